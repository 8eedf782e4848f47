/* The host build's HAL: stdin/stdout as the UART, the monotonic clock, a modelled meter. */
#ifndef GRIDBID_HAL_HOST_H
#define GRIDBID_HAL_HOST_H

#include "hal.h"

/* What main_host.c reads from the command line. */
struct host_options {
    struct hal_config cfg;
    double power_w;       /* power through relay 0 while it is closed */
    double speed;         /* simulated seconds of energy flow per wall-clock second */
    uint32_t millis_start; /* first hal_millis() value, to exercise its wrap-around */
};

void hal_host_init(const struct host_options *options);

#endif
