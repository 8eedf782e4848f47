/* USART0 of the ATmega1284P: the bridge's line, 115200 8N1, interrupt-driven ring buffers. */
#ifndef GRIDBID_AVR_UART_H
#define GRIDBID_AVR_UART_H

#include <stddef.h>
#include <stdint.h>

#define UART_BAUD 115200ul
#define UART_TX_SIZE 256u  /* two full frames: a reply and an event queue without waiting */
#define UART_RX_SIZE 128u  /* more than a frame's line between two main-loop passes */
#define UART_TX_WAIT_MS 20u /* longest a full transmit buffer blocks a write (~2 frames' time) */

void uart_init(void);
size_t uart_read(char *data, size_t max);          /* never blocks */
size_t uart_write(const char *data, size_t n);     /* blocks at most UART_TX_WAIT_MS */
uint8_t uart_rx_pending(void);                     /* bytes received and not yet read */
uint16_t uart_rx_overruns(void);                   /* bytes lost to a full RX ring or the UART */

#endif
