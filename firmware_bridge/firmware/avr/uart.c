/* USART0 ring buffers: RX fills from its ISR, TX drains from the data-register-empty ISR. */
#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "timer.h"

static volatile uint8_t rx_buf[UART_RX_SIZE];
static volatile uint8_t rx_head, rx_tail; /* head: written by the ISR; tail: by uart_read */
static volatile uint8_t tx_buf[UART_TX_SIZE];
static volatile uint8_t tx_head, tx_tail; /* head: written by uart_write; tail: by the ISR */
static volatile uint16_t overruns;

/* Index arithmetic wraps at 256 for the TX ring (uint8_t) and masks for the RX ring. */
#define RX_MASK (UART_RX_SIZE - 1u)

void uart_init(void)
{
    /* U2X: 18.432 MHz / (8 x 115200) = 20 exactly, so UBRR = 19 with no baud error. */
    UBRR0 = (uint16_t)(F_CPU / (8ul * UART_BAUD) - 1ul);
    UCSR0A = (uint8_t)_BV(U2X0);
    UCSR0C = (uint8_t)(_BV(UCSZ01) | _BV(UCSZ00)); /* 8N1 */
    UCSR0B = (uint8_t)(_BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0));
}

ISR(USART0_RX_vect)
{
    uint8_t status = UCSR0A;
    uint8_t c = UDR0;
    uint8_t next = (uint8_t)((rx_head + 1u) & RX_MASK);
    if (status & (_BV(DOR0) | _BV(FE0)))
        overruns++; /* a byte lost in hardware (or garbled): the core sees a bad frame */
    if (next == rx_tail) {
        overruns++; /* full: the newest byte is lost, the line fails its CRC */
        return;
    }
    rx_buf[rx_head] = c;
    rx_head = next;
}

ISR(USART0_UDRE_vect)
{
    if (tx_tail == tx_head) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0); /* empty: no more interrupts until the next write */
        return;
    }
    UDR0 = tx_buf[tx_tail];
    tx_tail = (uint8_t)(tx_tail + 1u);
}

size_t uart_read(char *data, size_t max)
{
    size_t n = 0;
    while (n < max && rx_tail != rx_head) {
        data[n++] = (char)rx_buf[rx_tail];
        rx_tail = (uint8_t)((rx_tail + 1u) & RX_MASK);
    }
    return n;
}

uint8_t uart_rx_pending(void) { return (uint8_t)((uint8_t)(rx_head - rx_tail) & RX_MASK); }

uint16_t uart_rx_overruns(void)
{
    uint16_t n;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { n = overruns; }
    return n;
}

size_t uart_write(const char *data, size_t n)
{
    size_t taken = 0;
    uint32_t waited_from = 0;
    uint8_t waiting = 0;
    while (taken < n) {
        uint8_t next = (uint8_t)(tx_head + 1u);
        if (next == tx_tail) {
            /* Full: the ISR drains a byte every 87 us; wait for room, but never past the
             * bound, so a stuck line cannot stall the failsafe. */
            if (!waiting) {
                waiting = 1;
                waited_from = timer_millis();
            } else if (timer_millis() - waited_from >= UART_TX_WAIT_MS) {
                break;
            }
            continue;
        }
        tx_buf[tx_head] = (uint8_t)data[taken++];
        tx_head = next;
        UCSR0B |= (uint8_t)_BV(UDRIE0);
        waiting = 0;
    }
    return taken;
}
