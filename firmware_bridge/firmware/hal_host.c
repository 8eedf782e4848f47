/* Host HAL: UART = stdin/stdout, clock = CLOCK_MONOTONIC, meter = relay 0 x power x speed,
 * randomness = /dev/urandom. */
#define _POSIX_C_SOURCE 200809L

#include "hal_host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

#define VOLTS 12.6
#define NO_LOAD_FLOOR_W 0.5 /* a meter reads zero below this, like the emulator's */

static struct host_options opt;
static double started_s, last_s;
static double wh_in, wh_out;
static uint8_t relay_on[BOARD_MAX_RELAYS];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Energy through relay 0 since the last look: into the load, or out of the battery. */
static void integrate(void)
{
    double t = now_s();
    if (relay_on[0]) {
        double wh = opt.power_w * opt.speed * (t - last_s) / 3600.0;
        if (opt.cfg.kind == BOARD_CONSUMER)
            wh_in += wh;
        else
            wh_out += wh;
    }
    last_s = t;
}

void hal_host_init(const struct host_options *options)
{
    opt = *options;
    started_s = last_s = now_s();
}

const struct hal_config *hal_config(void) { return &opt.cfg; }

uint32_t hal_millis(void)
{
    return opt.millis_start + (uint32_t)(uint64_t)((now_s() - started_s) * 1000.0);
}

void hal_uart_write(const char *data, size_t n)
{
    while (n > 0) {
        ssize_t put = write(STDOUT_FILENO, data, n);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0 && errno == EPIPE)
            exit(0); /* the reader is gone for good */
        if (put <= 0)
            return; /* full (nobody reading) or gone: drop, as a UART would */
        data += put;
        n -= (size_t)put;
    }
}

uint32_t hal_random32(void)
{
    uint32_t value = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, &value, sizeof value) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof value) /* no urandom: the clock's nanoseconds, still per HELLO */
        value = (uint32_t)(now_s() * 1e9) ^ (uint32_t)getpid();
    return value;
}

void hal_relay_set(uint8_t n, uint8_t on)
{
    if (n >= BOARD_MAX_RELAYS)
        return;
    integrate(); /* energy so far flowed under the old state */
    relay_on[n] = on;
}

void hal_meter_read(struct meter *m)
{
    double watts = relay_on[0] ? opt.power_w : 0.0;
    integrate();
    if (watts < NO_LOAD_FLOOR_W)
        watts = 0.0;
    if (opt.cfg.kind == BOARD_PRODUCER)
        watts = -watts; /* net power is in minus out */
    m->mv = (int32_t)(VOLTS * 1000.0 + 0.5);
    m->dw = (int32_t)(watts * 10.0 + (watts < 0 ? -0.5 : 0.5));
    m->ma = (int32_t)(watts / VOLTS * 1000.0 + (watts < 0 ? -0.5 : 0.5));
    m->mwh_in = (uint64_t)(wh_in * 1000.0);
    m->mwh_out = (uint64_t)(wh_out * 1000.0);
    m->soc_milli = -1; /* no battery model here */
    m->pv_dw = -1;
}
