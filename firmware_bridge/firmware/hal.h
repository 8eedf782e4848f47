/* The hardware a meter board's protocol core needs: clock, UART, relays, meter, config. */
#ifndef GRIDBID_HAL_H
#define GRIDBID_HAL_H

#include <stddef.h>
#include <stdint.h>

#define BOARD_PRODUCER 0u
#define BOARD_CONSUMER 1u

/* What the meter measures. Counters are cumulative since power-on and never decrease.
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

/* Fixed at power-on; the core reads it once in board_init(). */
struct hal_config {
    const char *board_id; /* printable ASCII, no space or '*', at most BOARD_MAX_ID chars */
    uint8_t kind;         /* BOARD_PRODUCER or BOARD_CONSUMER */
    uint8_t relay_count;  /* 1..BOARD_MAX_RELAYS */
    uint32_t failsafe_ms; /* open every relay after this long without a valid frame */
    uint32_t report_ms;   /* period of unsolicited READING lines */
    uint32_t time_factor_milli; /* declared in HELLO as TF: 1000 (x1) on a real board; an
                                 * emulated one counts energy this much faster, 1..1e9 */
};

uint32_t hal_millis(void);                        /* monotonic, may wrap */
void hal_uart_write(const char *data, size_t n);  /* may drop bytes when nobody listens */
void hal_relay_set(uint8_t n, uint8_t on);
void hal_meter_read(struct meter *m);
const struct hal_config *hal_config(void);
uint32_t hal_random32(void);  /* unpredictable bits for each HELLO's session id */

#endif
