/* Host stand-ins for what arm/meter.c uses of the STM32 HAL (USART2's ring, the clock, the
 * config), so tests/firmware/test_arm_meter.py can drive hal_meter_poll through ctypes. Bytes
 * "received" come from shim_rx(); bytes "sent" collect in shim_tx. */
#include <string.h>

#include "hal_arm.h"

struct uart uart_bridge, uart_meter;

static uint8_t rx[256];
static size_t rx_len, rx_pos;
uint8_t shim_tx[256];
size_t shim_tx_len;
uint32_t shim_now;
static struct hal_config config = {.board_id = "shim", .meter_addr = 1, .kind = ARM_KIND};

void shim_rx(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n && rx_len < sizeof rx; i++)
        rx[rx_len++] = data[i];
}

void shim_set_meter_addr(uint8_t addr) { config.meter_addr = addr; }

void uart_init(struct uart *u, uint32_t baud, uint32_t cr2, uint32_t cr3)
{
    (void)u, (void)baud, (void)cr2, (void)cr3;
}

size_t uart_read(struct uart *u, uint8_t *out, size_t max)
{
    size_t n = 0;
    (void)u;
    while (n < max && rx_pos < rx_len)
        out[n++] = rx[rx_pos++];
    if (rx_pos == rx_len)
        rx_pos = rx_len = 0;
    return n;
}

void uart_rx_flush(struct uart *u)
{
    (void)u;
    rx_pos = rx_len = 0;
}

size_t uart_write(struct uart *u, const uint8_t *data, size_t n, uint32_t wait_ms)
{
    (void)u, (void)wait_ms;
    for (size_t i = 0; i < n && shim_tx_len < sizeof shim_tx; i++)
        shim_tx[shim_tx_len++] = data[i];
    return n;
}

uint32_t arm_now(void) { return shim_now; }
const struct hal_config *hal_config(void) { return &config; }
