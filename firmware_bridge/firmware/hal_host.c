/* Host HAL: UART = stdin/stdout, config "EEPROM" = a file, randomness = /dev/urandom.
 * Wall mode: clock = CLOCK_MONOTONIC, meter = relay 0 x power x speed.
 * Scripted mode (--control-fd): clock, meter and its plug move only on the driver's
 * commands (hal_host_script.c), so a test replays a scenario exactly. */
#define _POSIX_C_SOURCE 200809L

#include "hal_host.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

#define VOLTS 12.6
#define NO_LOAD_FLOOR_W 0.5 /* a meter reads zero below this, like the emulator's */
#define WRITE_BOUND_MS 20   /* longest a full UART buffer holds the core up */

struct host_state host;

static double started_s, last_s;
static double wh_in, wh_out;
static char id_buf[HAL_MAX_ID + 1];

double host_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Energy through relay 0 since the last look: into the load, or out of the battery. */
static void integrate(void)
{
    double t = host_now_s();
    if (host.relay_on[0]) {
        double wh = host.opt.power_w * host.opt.speed * (t - last_s) / 3600.0;
        if (host.opt.cfg.kind == BOARD_CONSUMER)
            wh_in += wh;
        else
            wh_out += wh;
    }
    last_s = t;
}

/* The "EEPROM": two lines, id and meter address; a missing or bad file keeps the defaults. */
static void load_config(void)
{
    char id[HAL_MAX_ID + 2];
    unsigned addr = 0;
    FILE *f = host.opt.eeprom ? fopen(host.opt.eeprom, "r") : NULL;
    if (!f)
        return;
    if (fscanf(f, "%33s %u", id, &addr) == 2 && strlen(id) <= HAL_MAX_ID &&
        addr >= HAL_METER_ADDR_MIN && addr <= HAL_METER_ADDR_MAX) {
        strcpy(id_buf, id);
        host.opt.cfg.meter_addr = (uint8_t)addr;
    }
    fclose(f);
}

void hal_host_init(const struct host_options *options)
{
    host.opt = *options;
    strncpy(id_buf, options->cfg.board_id, HAL_MAX_ID);
    id_buf[HAL_MAX_ID] = '\0';
    load_config();
    host.opt.cfg.board_id = id_buf;
    started_s = last_s = host_now_s();
    host.scripted_ms = 0;
    host.plugged = 1;
    host.scripted_meter.soc_milli = -1; /* no SOC= / PV= until METER says */
    host.scripted_meter.pv_dw = -1;
    host.last_kick_ms = 0;
    if (!host.opt.scripted)
        host.meter_latency_ms = 0; /* the modelled meter answers at once */
    else
        host.meter_latency_ms = 20; /* a Modbus answer at 9600 baud, about */
    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
}

const struct hal_config *hal_config(void) { return &host.opt.cfg; }

int hal_config_save(const char *board_id, uint8_t meter_addr)
{
    if (host.opt.eeprom) {
        char tmp[4096];
        FILE *f;
        snprintf(tmp, sizeof tmp, "%s.tmp", host.opt.eeprom);
        f = fopen(tmp, "w");
        if (!f)
            return -1;
        if (fprintf(f, "%s\n%u\n", board_id, (unsigned)meter_addr) < 0 || fclose(f) != 0 ||
            rename(tmp, host.opt.eeprom) != 0)
            return -1;  /* the old file stays whole: nothing changed */
    }
    strncpy(id_buf, board_id, HAL_MAX_ID);
    id_buf[HAL_MAX_ID] = '\0';
    host.opt.cfg.meter_addr = meter_addr;
    return 0;
}

uint32_t hal_millis(void)
{
    if (host.opt.scripted)
        return host.opt.millis_start + host.scripted_ms;
    return host.opt.millis_start + (uint32_t)(uint64_t)((host_now_s() - started_s) * 1000.0);
}

size_t hal_uart_read(char *data, size_t max)
{
    ssize_t n = read(STDIN_FILENO, data, max);
    if (n > 0)
        return (size_t)n;
    if (n == 0)
        host.stopping = 1; /* end of input: nobody will ever talk to us again */
    return 0;
}

size_t hal_uart_write(const char *data, size_t n)
{
    size_t done = 0;
    double deadline = host_now_s() + WRITE_BOUND_MS / 1000.0;
    while (done < n) {
        ssize_t put = write(STDOUT_FILENO, data + done, n - done);
        if (put > 0) {
            done += (size_t)put;
            continue;
        }
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0 && errno == EPIPE)
            exit(0); /* the reader is gone for good */
        if (put < 0 && errno == EAGAIN && host_now_s() < deadline) {
            struct pollfd out = {STDOUT_FILENO, POLLOUT, 0};
            poll(&out, 1, 1); /* full: wait a little for the reader, within the bound */
            continue;
        }
        break; /* nobody reading within the bound: the core counts the short write */
    }
    return done;
}

uint32_t hal_random32(void)
{
    uint32_t value = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, &value, sizeof value) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof value) /* no urandom: the clock's nanoseconds, still per HELLO */
        value = (uint32_t)(host_now_s() * 1e9) ^ (uint32_t)getpid();
    return value;
}

void hal_relay_set(uint8_t n, uint8_t on)
{
    if (n >= BOARD_MAX_RELAYS)
        return;
    if (!host.opt.scripted)
        integrate(); /* energy so far flowed under the old state */
    host.relay_on[n] = on;
}

/* The wall mode's meter: relay 0 passing --power W, --speed times faster. */
static void modelled(struct meter *m)
{
    double watts = host.relay_on[0] ? host.opt.power_w : 0.0;
    integrate();
    if (watts < NO_LOAD_FLOOR_W)
        watts = 0.0;
    if (host.opt.cfg.kind == BOARD_PRODUCER)
        watts = -watts; /* net power is in minus out */
    m->mv = (int32_t)(VOLTS * 1000.0 + 0.5);
    m->dw = (int32_t)(watts * 10.0 + (watts < 0 ? -0.5 : 0.5));
    m->ma = (int32_t)(watts / VOLTS * 1000.0 + (watts < 0 ? -0.5 : 0.5));
    m->mwh_in = (uint64_t)(wh_in * 1000.0);
    m->mwh_out = (uint64_t)(wh_out * 1000.0);
    m->soc_milli = -1; /* no battery model here */
    m->pv_dw = -1;
}

/* One request per --meter-ms, answered meter_latency_ms later (the scripted meter: in a later
 * call, with what it measured when the request went out, as a Modbus meter; the modelled one
 * at once, in the call that asked, as hal.h allows), or a fault after HOST_METER_TIMEOUT_MS
 * when unplugged at the request or since: a Modbus master that never waits. */
uint8_t hal_meter_poll(struct meter *m)
{
    uint32_t now = hal_millis();
    uint8_t asked = 0;
    if (!host.in_flight) {
        if (host.polled && now - host.asked_ms < host.opt.meter_ms)
            return METER_PENDING;
        host.in_flight = 1;
        host.polled = 1;
        host.asked_ms = now;
        host.sampled = host.scripted_meter;
        host.heard = host.plugged;  /* an unplugged meter never got the request */
        asked = METER_ASKED;
        if (host.meter_latency_ms > 0u)
            return METER_PENDING | METER_ASKED;
    }
    if (!host.heard || !host.plugged || host.scripted_fault) {
        if (now - host.asked_ms < HOST_METER_TIMEOUT_MS)
            return (uint8_t)(METER_PENDING | asked);
        host.in_flight = 0;
        return METER_FAULT;
    }
    if (now - host.asked_ms < host.meter_latency_ms)
        return METER_PENDING;
    host.in_flight = 0;
    if (host.opt.scripted)
        *m = host.sampled;
    else
        modelled(m);
    return (uint8_t)(METER_OK | asked);
}

/* Milliseconds until the meter's next answer or fault is due (what wakes a real HAL). */
uint32_t host_meter_due_ms(void)
{
    uint32_t now = hal_millis(), since = now - host.asked_ms, wait;
    if (!host.in_flight)
        return since >= host.opt.meter_ms ? 0u : host.opt.meter_ms - since;
    wait = host.heard && host.plugged ? host.meter_latency_ms : HOST_METER_TIMEOUT_MS;
    return since >= wait ? 0u : wait - since;
}

void hal_watchdog_kick(void)
{
    host.last_kick_ms = host.opt.scripted ? host.scripted_ms : hal_millis();
    host.kicks++;
}

void hal_idle(uint32_t max_ms)
{
    if (host.opt.scripted) {
        host_script_idle(max_ms);
        return;
    }
    struct pollfd in = {STDIN_FILENO, POLLIN, 0};
    uint32_t meter = host_meter_due_ms();
    int ms = (int)(meter < max_ms ? meter : max_ms);
    int ready = poll(&in, 1, ms > LOOP_MS ? LOOP_MS : ms);
    if (ready > 0 && !(in.revents & POLLIN)) {
        struct timespec ts = {0, 20 * 1000000L}; /* POLLHUP: a pty with no client attached */
        nanosleep(&ts, NULL);
    }
}
