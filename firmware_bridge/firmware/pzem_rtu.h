/* Modbus RTU master for one PZEM-017 DC meter, without hardware: it builds the request, takes
 * the answer a byte at a time and says when it is complete, garbled or late. Portable C99: the
 * ARM HAL drives it from USART2, the AVR HAL from USART1, and tests build it on the host. */
#ifndef GRIDBID_PZEM_RTU_H
#define GRIDBID_PZEM_RTU_H

#include <stddef.h>
#include <stdint.h>

#define PZEM_REQUEST_LEN 8u   /* address, 0x04, start (2), count (2), CRC (2) */
#define PZEM_REGISTERS 8u     /* input registers 0..7: V, I, P lo/hi, Wh lo/hi, alarms */
#define PZEM_REPLY_LEN 21u    /* address, 0x04, byte count 16, 16 data bytes, CRC (2) */
#ifndef PZEM_TIMEOUT_MS
#define PZEM_TIMEOUT_MS 200u  /* the PZEM answers in well under 100 ms at 9600 baud */
#endif

enum { PZEM_IDLE, PZEM_WAIT, PZEM_DONE, PZEM_FAILED };

/* Why the last request failed (PZEM_FAILED). */
enum { PZEM_ERR_NONE, PZEM_ERR_TIMEOUT, PZEM_ERR_CRC, PZEM_ERR_FRAME, PZEM_ERR_EXCEPTION };

/* One PZEM-017 reading in the meter's own units. */
struct pzem_values {
    uint16_t centivolts;
    uint16_t centiamps;
    uint32_t deciwatts;
    uint32_t wh;
};

/* One request in flight and its answer so far. */
struct pzem_rtu {
    uint8_t state;   /* PZEM_IDLE .. PZEM_FAILED */
    uint8_t error;   /* PZEM_ERR_*, once FAILED */
    uint8_t addr;
    uint8_t len;
    uint8_t buf[PZEM_REPLY_LEN];
    uint32_t sent_ms;
};

uint16_t pzem_crc16(const uint8_t *data, size_t n);  /* Modbus CRC-16 (poly 0xA001, init FFFF) */
/* Start a read of the 8 input registers of meter `addr` at `now_ms`; the bytes to send go to
 * `out`. Any answer still arriving to an earlier request is forgotten. */
void pzem_begin(struct pzem_rtu *p, uint8_t addr, uint32_t now_ms, uint8_t out[PZEM_REQUEST_LEN]);
/* One received byte; bytes outside a request (line noise, a late answer) are ignored. */
void pzem_feed(struct pzem_rtu *p, uint8_t byte);
/* The request's state at `now_ms`: WAIT turns into FAILED (timeout) after PZEM_TIMEOUT_MS;
 * on DONE the reading is in *v. */
uint8_t pzem_check(struct pzem_rtu *p, uint32_t now_ms, struct pzem_values *v);

#endif
