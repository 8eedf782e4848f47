/* A non-blocking Modbus RTU master on USART1 (9600 8N2, RS-485 driver enable on PD4) for one
 * PZEM-017 DC meter: read input registers 0x0000..0x0007 every METER_PERIOD_MS. */
#ifndef GRIDBID_AVR_MODBUS_H
#define GRIDBID_AVR_MODBUS_H

#include <stdint.h>

#include "../pzem_rtu.h"

#define METER_BAUD 9600ul
#ifndef METER_PERIOD_MS
#define METER_PERIOD_MS 250u  /* a request this often; the core's budgets lag by at most this */
#endif
/* The Makefile sets PZEM_TIMEOUT_MS (METER_TIMEOUT_MS there, 150 ms: 21 reply bytes take 24 ms
 * at 9600 8N2; the rest is slack) for ../pzem_rtu.c, which gives up on an answer after it. */

enum { MODBUS_IDLE, MODBUS_WAITING, MODBUS_ANSWERED, MODBUS_FAILED, MODBUS_SENT };

void modbus_init(void);
/* Advance the exchange: send a request when one is due, check an answer that came in.
 * Never blocks. MODBUS_SENT when this call sent a request (the meter samples from then on),
 * MODBUS_ANSWERED (values filled) or MODBUS_FAILED once per request in a later call, else
 * MODBUS_IDLE / MODBUS_WAITING. */
uint8_t modbus_step(uint32_t now_ms, uint8_t addr, struct pzem_values *values);

#endif
