/* Interrupt-driven USART1 (bridge) and USART2 (meter): a receive and a transmit ring each. */
#include "hal_arm.h"

#include "stm32f030.h"

static uint8_t bridge_rx[256], bridge_tx[256], meter_rx[64], meter_tx[16];

struct uart uart_bridge = {USART1_BASE, {bridge_rx, 255u, 0, 0}, {bridge_tx, 255u, 0, 0}, 0};
struct uart uart_meter = {USART2_BASE, {meter_rx, 63u, 0, 0}, {meter_tx, 15u, 0, 0}, 0};

static uint16_t ring_used(const struct ring *r) { return (uint16_t)((r->head - r->tail) & 0xFFFFu); }
static uint8_t ring_full(const struct ring *r) { return ring_used(r) > r->mask; }

/* 8 data bits, no parity; `cr2` adds stop bits, `cr3` the RS-485 driver enable. */
void uart_init(struct uart *u, uint32_t baud, uint32_t cr2, uint32_t cr3)
{
    USART_CR1(u->base) = 0;
    USART_BRR(u->base) = (CPU_HZ + baud / 2u) / baud;  /* oversampling by 16 */
    USART_CR2(u->base) = cr2;
    USART_CR3(u->base) = cr3 | USART_CR3_EIE;
    /* DE asserted one bit time before and after each frame: the transceiver settles. DEAT and
     * DEDT are only writable while UE is 0, so they go in first. */
    USART_CR1(u->base) = USART_CR1_DEAT(16u) | USART_CR1_DEDT(16u);
    USART_CR1(u->base) |= USART_CR1_RXNEIE | USART_CR1_TE | USART_CR1_RE | USART_CR1_UE;
}

size_t uart_read(struct uart *u, uint8_t *out, size_t max)
{
    size_t n = 0;
    while (n < max && ring_used(&u->rx) > 0u) {
        out[n++] = u->rx.data[u->rx.tail & u->rx.mask];
        u->rx.tail = (uint16_t)(u->rx.tail + 1u);
    }
    return n;
}

uint8_t uart_rx_pending(const struct uart *u) { return ring_used(&u->rx) > 0u; }

void uart_rx_flush(struct uart *u) { u->rx.tail = u->rx.head; }

/* Queue bytes; on a full ring wait for the interrupt to drain it, at most `wait_ms` in all.
 * The wire drains a full ring in a fixed time, so the bound only bites on a dead USART. */
size_t uart_write(struct uart *u, const uint8_t *data, size_t n, uint32_t wait_ms)
{
    uint32_t start = arm_now();
    size_t taken = 0;
    while (taken < n) {
        if (ring_full(&u->tx)) {
            if (arm_now() - start >= wait_ms)
                break;
            wait_for_interrupt();  /* TXE or SysTick wakes us */
            continue;
        }
        u->tx.data[u->tx.head & u->tx.mask] = data[taken++];
        u->tx.head = (uint16_t)(u->tx.head + 1u);
        irq_disable();  /* the handler clears TXEIE on an empty ring: no lost update */
        USART_CR1(u->base) |= USART_CR1_TXEIE;
        irq_enable();
    }
    return taken;
}

static void uart_irq(struct uart *u)
{
    uint32_t isr = USART_ISR(u->base);
    if (isr & (USART_ISR_ORE | USART_ISR_FE | USART_ISR_NF | USART_ISR_PE)) {
        USART_ICR(u->base) = USART_ICR_ERRORS;
        if (u->rx_lost < 0xFFFFu)
            u->rx_lost++;
    }
    if (isr & USART_ISR_RXNE) {
        uint8_t byte = (uint8_t)USART_RDR(u->base);
        if (!ring_full(&u->rx)) {
            u->rx.data[u->rx.head & u->rx.mask] = byte;
            u->rx.head = (uint16_t)(u->rx.head + 1u);
        } else if (u->rx_lost < 0xFFFFu) {
            u->rx_lost++;
        }
    }
    if ((isr & USART_ISR_TXE) && (USART_CR1(u->base) & USART_CR1_TXEIE)) {
        if (ring_used(&u->tx) > 0u) {
            USART_TDR(u->base) = u->tx.data[u->tx.tail & u->tx.mask];
            u->tx.tail = (uint16_t)(u->tx.tail + 1u);
        } else {
            USART_CR1(u->base) &= ~USART_CR1_TXEIE;
        }
    }
}

void usart1_irq(void) { uart_irq(&uart_bridge); }
void usart2_irq(void) { uart_irq(&uart_meter); }

/* -- the bridge side of hal.h --------------------------------------------------------------- */

size_t hal_uart_read(char *data, size_t max) { return uart_read(&uart_bridge, (uint8_t *)data, max); }

size_t hal_uart_write(const char *data, size_t n)
{
    return uart_write(&uart_bridge, (const uint8_t *)data, n, TX_WAIT_MS);
}
