/* hal.h's meter, transmit and idle on the ATmega1284P: the PZEM-017 registers scaled to a
 * struct meter, the bounded transmit, and sleep until the next thing to do. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>

#include "../board.h"
#include "hal_avr.h"
#include "modbus.h"
#include "timer.h"
#include "uart.h"

/* A PZEM-017 reading: 0.01 V, 0.01 A, 0.1 W, 1 Wh. It counts one direction: into the load on
 * a consumer, out onto the bus on a producer. */
static void scale(const struct pzem_values *v, struct meter *m)
{
    uint64_t mwh = (uint64_t)v->wh * 1000u;
    int32_t dw = v->deciwatts > 0x7FFFFFFFul ? 0x7FFFFFFFl : (int32_t)v->deciwatts;
    m->mv = (int32_t)v->centivolts * 10;
    m->ma = (int32_t)v->centiamps * 10;
    m->dw = AVR_KIND == BOARD_PRODUCER ? -dw : dw; /* net power is in minus out */
    m->mwh_in = AVR_KIND == BOARD_PRODUCER ? 0u : mwh;
    m->mwh_out = AVR_KIND == BOARD_PRODUCER ? mwh : 0u;
    if (AVR_KIND == BOARD_PRODUCER)
        m->ma = -m->ma;
    m->soc_milli = -1; /* a PZEM-017 has no battery or PV channel */
    m->pv_dw = -1;
}

uint8_t hal_meter_poll(struct meter *m)
{
    struct pzem_values values;
    switch (modbus_step(timer_millis(), hal_config()->meter_addr, &values)) {
    case MODBUS_ANSWERED:
        scale(&values, m);
        return METER_OK;
    case MODBUS_FAILED:
        return METER_FAULT;
    case MODBUS_SENT:
        return METER_PENDING | METER_ASKED;
    default:
        return METER_PENDING;
    }
}

size_t hal_uart_write(const char *data, size_t n) { return uart_write(data, n); }

/* Sleep (idle: UARTs and timers run) until a byte from the bridge is waiting or max_ms has
 * passed since the core last took the time; Timer0 wakes us each millisecond to look. Interrupts are off between the check
 * and sleep_cpu (sei takes effect after the next instruction), so no wake-up is missed. */
void hal_idle(uint32_t max_ms)
{
    uint32_t from = hal_avr_last_millis;
    for (;;) {
        cli();
        if (uart_rx_pending() || timer_millis() - from >= max_ms) {
            sei();
            return;
        }
        sleep_enable();
        sei();
        sleep_cpu();
        sleep_disable();
    }
}
