/* What the STM32F030 HAL's files share: pins, baud rates, the UART rings, config storage. */
#ifndef GRIDBID_HAL_ARM_H
#define GRIDBID_HAL_ARM_H

#include <stddef.h>
#include <stdint.h>

#include "../hal.h"

#define BRIDGE_BAUD 115200ul  /* USART1 PA9 TX / PA10 RX: the bridge (docs/PROTOCOL.md) */
#define METER_BAUD 9600ul     /* USART2 PA2 TX / PA3 RX / PA1 DE: RS-485 to the PZEM-017, 8N2 */
#define TX_WAIT_MS 20u        /* the longest hal_uart_write blocks on a full ring: > 1 frame */
/* The meter's pace; a build may change them (make ARM_DEFS=-DMETER_PERIOD_MS=100u ...). */
#ifndef METER_PERIOD_MS
#define METER_PERIOD_MS 500u  /* a meter request every half second */
#endif
#ifndef METER_RETRIES
#define METER_RETRIES 1u      /* a failed request is repeated once before it is a fault */
#endif

/* Build-time board settings (make arm ARM_KIND=... ARM_RELAYS=...). */
#ifndef ARM_KIND
#define ARM_KIND BOARD_CONSUMER
#endif
#ifndef ARM_RELAYS
#define ARM_RELAYS 2u
#endif
#ifndef ARM_MILLIS_START
#define ARM_MILLIS_START 0ul  /* a test hook: start the millisecond counter near its wrap */
#endif

/* A byte ring filled by one side (main loop or interrupt) and emptied by the other. Sizes are
 * powers of two; head and tail run freely and are masked on use. */
struct ring {
    uint8_t *data;
    uint16_t mask;
    volatile uint16_t head;  /* written by the producer only */
    volatile uint16_t tail;  /* written by the consumer only */
};

/* One USART with its two rings. */
struct uart {
    uint32_t base;
    struct ring rx, tx;
    volatile uint16_t rx_lost;  /* bytes dropped: ring full, overrun or framing errors */
};

extern struct uart uart_bridge, uart_meter;

void uart_init(struct uart *u, uint32_t baud, uint32_t cr2, uint32_t cr3);
size_t uart_read(struct uart *u, uint8_t *out, size_t max);
size_t uart_write(struct uart *u, const uint8_t *data, size_t n, uint32_t wait_ms);
uint8_t uart_rx_pending(const struct uart *u);
void uart_rx_flush(struct uart *u);

uint32_t arm_now(void);                 /* hal_arm.c: the clock, for the HAL's own use */
void meter_init(void);                   /* meter.c */
void config_load(struct hal_config *c);  /* config_flash.c */
int config_store(const char *id, uint8_t meter_addr);

#endif
