/* hal_meter_poll for a PZEM-017 on USART2 (RS-485): one request every METER_PERIOD_MS, the
 * answer gathered from the receive ring as it comes; a late or garbled one is asked again once,
 * and a fault when that fails too (a dead meter shows within 2 x PZEM_TIMEOUT_MS). */
#include "hal_arm.h"
#include "../pzem_rtu.h"
#include "stm32f030.h"

static struct pzem_rtu rtu;
static uint32_t last_start;
static uint8_t started;
static uint8_t retried;  /* immediate retries of the failing request so far */

void meter_init(void)
{
    /* 8N2, as the PZEM-017 wants; DE (PA1) high while USART2 sends, for the transceiver. */
    uart_init(&uart_meter, METER_BAUD, USART_CR2_STOP_2, USART_CR3_DEM);
}

static void start_request(uint32_t now)
{
    uint8_t req[PZEM_REQUEST_LEN];
    uart_rx_flush(&uart_meter);  /* whatever came late for the last request is not this one's */
    pzem_begin(&rtu, hal_config()->meter_addr, now, req);
    /* 8 bytes fit the 16-byte ring, which is empty between requests: this never waits. */
    uart_write(&uart_meter, req, sizeof req, 0);
}

/* A PZEM-017 counts 1 Wh and 10 mA steps. The scenario suite's build (tests/firmware/
 * arm_driver.py) sets both to 1 to script finer values through the same code. */
#ifndef PZEM_MWH_PER_STEP
#define PZEM_MWH_PER_STEP 1000u
#endif
#ifndef PZEM_MA_PER_STEP
#define PZEM_MA_PER_STEP 10
#endif

/* The PZEM's units to struct meter's. Its one energy counter is the load's (consumer) or what
 * the battery gave the bus (producer), whose net power (in minus out) is then negative. */
static void to_meter(const struct pzem_values *v, struct meter *m)
{
    uint8_t producer = hal_config()->kind == BOARD_PRODUCER;
    int32_t sign = producer ? -1 : 1;
    m->mv = (int32_t)v->centivolts * 10;
    m->ma = sign * (int32_t)v->centiamps * PZEM_MA_PER_STEP;
    m->dw = sign * (int32_t)(v->deciwatts & 0x7FFFFFFFul);
    m->mwh_in = producer ? 0u : (uint64_t)v->wh * PZEM_MWH_PER_STEP;
    m->mwh_out = producer ? (uint64_t)v->wh * PZEM_MWH_PER_STEP : 0u;
    m->soc_milli = -1;  /* a PZEM-017 knows no battery charge or PV power */
    m->pv_dw = -1;
}

uint8_t hal_meter_poll(struct meter *m)
{
    uint32_t now = arm_now();
    uint8_t byte;
    struct pzem_values v;
    uint8_t state, asked = 0;
    while (uart_read(&uart_meter, &byte, 1u))
        pzem_feed(&rtu, byte);
    state = pzem_check(&rtu, now, &v);
    if (state == PZEM_WAIT)
        return METER_PENDING;
#if METER_RETRIES > 0
    if (state == PZEM_FAILED && retried < METER_RETRIES) {
        /* One lost answer (a noise burst on the bus) is no dead meter: the core opens
         * budget-held relays on a fault, so ask again at once before reporting one. */
        retried++;
        start_request(now);
        return METER_PENDING | METER_ASKED;
    }
#endif
    if (state == PZEM_DONE || state == PZEM_FAILED) {
        rtu.state = PZEM_IDLE;  /* each answer or failure is reported once */
        retried = 0;
    }
    if (!started || now - last_start >= METER_PERIOD_MS) {
        start_request(now);
        last_start = now;  /* a retry keeps the cadence: periods count from the first try */
        started = 1;
        asked = METER_ASKED;  /* after the answer or fault below: that was the last request's */
    }
    if (state == PZEM_DONE) {
        to_meter(&v, m);
        return (uint8_t)(METER_OK | asked);
    }
    return (uint8_t)((state == PZEM_FAILED ? METER_FAULT : METER_PENDING) | asked);
}
