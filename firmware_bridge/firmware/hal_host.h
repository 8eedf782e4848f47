/* The host build's HAL: stdin/stdout as the UART, a file as EEPROM, a modelled or scripted
 * meter, the monotonic or a scripted clock. */
#ifndef GRIDBID_HAL_HOST_H
#define GRIDBID_HAL_HOST_H

#include "hal.h"

#include "board.h"

#define LOOP_MS 2                  /* wall mode: longest wait for input */
#define HOST_METER_TIMEOUT_MS 100u /* an unanswered meter request is a fault after this */
#define HOST_WATCHDOG_MS 1000u     /* scripted mode: no kick for this long resets (exit 3) */

/* What main_host.c reads from the command line. */
struct host_options {
    struct hal_config cfg;
    double power_w;        /* wall mode: power through relay 0 while it is closed */
    double speed;          /* wall mode: simulated seconds of energy flow per wall second */
    uint32_t millis_start; /* first hal_millis() value, to exercise its wrap-around */
    uint32_t meter_ms;     /* one meter request per this many ms */
    const char *eeprom;    /* file keeping board id and meter address, or NULL (RAM only) */
    int scripted;          /* 1: clock and meter follow the commands on control_fd */
    int control_fd;
};

/* The HAL's state, shared by hal_host.c and hal_host_script.c. */
struct host_state {
    struct host_options opt;
    uint8_t relay_on[BOARD_MAX_RELAYS];
    volatile int stopping;
    /* meter */
    uint32_t meter_latency_ms;
    uint8_t in_flight, polled, plugged, scripted_fault;
    uint8_t heard;                /* the meter was plugged when the request in flight went out */
    uint32_t asked_ms;
    struct meter scripted_meter;  /* what the scripted meter measures now (METER) */
    struct meter sampled;         /* what it measured when the request in flight went out */
    /* scripted clock and watchdog */
    uint32_t scripted_ms;
    uint32_t last_kick_ms;
    unsigned long kicks;
};

extern struct host_state host;

void hal_host_init(const struct host_options *options);
double host_now_s(void);
uint32_t host_meter_due_ms(void);
void host_script_idle(uint32_t max_ms);  /* hal_idle() of the scripted mode */

#endif
