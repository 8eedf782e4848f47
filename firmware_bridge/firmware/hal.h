/* The hardware a meter board's protocol core needs: clock, UART, relays, meter, config,
 * watchdog, sleep. Every target (host, avr/, arm/) implements all of it; none may block
 * longer than the bounds said here, so the failsafe keeps its time with a dead meter. */
#ifndef GRIDBID_HAL_H
#define GRIDBID_HAL_H

#include <stddef.h>
#include <stdint.h>

#define BOARD_PRODUCER 0u
#define BOARD_CONSUMER 1u

#define HAL_MAX_ID 32u         /* characters of a board id */
#define HAL_METER_ADDR_MIN 1u  /* Modbus slave addresses a meter may have */
#define HAL_METER_ADDR_MAX 247u

/* What the meter measures. Counters are the meter's own (lifetime) and never decrease.
 * soc_milli and pv_dw are producer extras: -1 leaves SOC= / PV= out of readings. */
struct meter {
    int32_t mv;        /* voltage, milli-volts */
    int32_t ma;        /* current, milli-amps */
    int32_t dw;        /* net power (in minus out), deci-watts */
    uint64_t mwh_in;   /* energy into the store (producer) or load (consumer), milli-Wh */
    uint64_t mwh_out;  /* energy out of a producer's battery onto the bus, milli-Wh */
    int16_t soc_milli; /* battery state of charge, 0..1000, or -1 */
    int32_t pv_dw;     /* PV panel output, deci-watts, or -1 */
};

/* The board's configuration. board_id and meter_addr come from persistent storage (EEPROM,
 * flash) when the HAL has it; hal_config_save() changes both there and in this struct. */
struct hal_config {
    const char *board_id; /* printable ASCII 0x21..0x7E, no '*', 1..HAL_MAX_ID chars */
    uint8_t meter_addr;   /* the meter's Modbus address, HAL_METER_ADDR_MIN..MAX */
    uint8_t kind;         /* BOARD_PRODUCER or BOARD_CONSUMER */
    uint8_t relay_count;  /* 1..BOARD_MAX_RELAYS */
    uint32_t failsafe_ms; /* open every relay after this long without a valid frame */
    uint32_t report_ms;   /* period of unsolicited READING lines */
    uint32_t time_factor_milli; /* declared in HELLO as TF: 1000 (x1) on a real board; an
                                 * emulated one counts energy this much faster, 1..1e9 */
};

/* hal_meter_poll() results, one of OK/PENDING/FAULT, with METER_ASKED or'ed in by the call
 * that sent a request. */
enum { METER_OK, METER_PENDING, METER_FAULT };
#define METER_ASKED 0x80u

/* -- clock ----------------------------------------------------------------------------------- */
uint32_t hal_millis(void);  /* monotonic milliseconds, wraps at 2^32 (the core handles it) */
/* Sleep until an interrupt (UART byte, meter answer, timer) or max_ms, whichever is first;
 * the core's main loop calls it between ticks (board_step), so a board does not spin. */
void hal_idle(uint32_t max_ms);
void hal_watchdog_kick(void);  /* once per main-loop pass; the HAL enables the watchdog */

/* -- bridge UART ------------------------------------------------------------------------------- */
/* Received bytes not yet taken, up to max; never blocks (0: none). */
size_t hal_uart_read(char *data, size_t max);
/* Buffered transmit. Never drops silently: when the buffer is full it blocks at most a bound
 * (a frame's time on the wire, ~11 ms at 115200 baud) and returns the bytes it took; the core
 * counts a short write and ends the broken line before its next frame. */
size_t hal_uart_write(const char *data, size_t n);

/* -- relays, meter ----------------------------------------------------------------------------- */
void hal_relay_set(uint8_t n, uint8_t on);  /* takes effect before it returns */
/* Never blocks. The HAL runs its meter requests itself (at its own pace, to cfg.meter_addr),
 * from within this call only (never from an interrupt), one at a time:
 * METER_OK: a fresh reading was written to *m (once per answer); METER_PENDING: nothing new
 * (a request in flight, or none due); METER_FAULT: the last request got no or a garbled
 * answer within the HAL's timeout (once per failed request; a HAL that retries reports it
 * after its retries: the core opens budget-held relays on the first FAULT).
 * | METER_ASKED: this call sent a request (a retry too). An OK or FAULT returned with it was
 * taken before that request went out (its answer comes in a later call), unless the meter
 * answers at once (the host build's model): then it is that request's answer. A meter
 * samples somewhere between a request and its answer, so the core charges a good answer's
 * energy to every relay closed at any moment from the previous good answer's request to
 * this answer: no Wh a closed relay passed escapes its budget, wherever in that span the
 * meter sampled (an at-once meter's span starts one request earlier than it needs to). */
uint8_t hal_meter_poll(struct meter *m);

/* -- configuration, identity ------------------------------------------------------------------- */
const struct hal_config *hal_config(void);  /* valid from before board_init() on */
/* Store a new board id (checked by the core as struct hal_config says) and meter address in
 * persistent storage and in hal_config(); 0 = saved, anything else = nothing changed. */
int hal_config_save(const char *board_id, uint8_t meter_addr);
uint32_t hal_random32(void);  /* unpredictable bits for each HELLO's session id */

#endif
