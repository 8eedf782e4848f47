/* The host HAL's scripted mode: a driver (tests/firmware/scenarios.py) owns the clock and the
 * meter through line commands on a control socket, answered "OK ..." or "ERR ...":
 *   ADVANCE <ms>          the clock moves ms, the board running every deadline on the way;
 *                         the answer "OK <hal_millis>" comes once it polled at the end
 *   METER <mv> <ma> <dw> <mwh_in> <mwh_out> <soc_milli> <pv_dw>   what the meter measures:
 *                         the answers to requests sent from now on (a Modbus meter samples
 *                         when asked)
 *   UNPLUG | PLUG         the meter stops / starts answering (a request sent or in flight
 *                         while unplugged times out: a fault)
 *   STATE                 "OK relays=<0/1 each> id=<id> addr=<n> kicks=<n> ms=<hal_millis>"
 * UART bytes that arrived before a command are handled before it. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal_host.h"

static char cmd[512];
static size_t cmd_len;
static uint32_t advance_left;
static int ack_owed, zero_steps;

static void answer(const char *text)
{
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t put = write(host.opt.control_fd, text + done, n - done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            exit(0); /* the driver is gone */
        done += (size_t)put;
    }
}

static void state(void)
{
    char out[256], relays[BOARD_MAX_RELAYS + 1];
    uint8_t n = host.opt.cfg.relay_count;
    for (uint8_t i = 0; i < n; i++)
        relays[i] = host.relay_on[i] ? '1' : '0';
    relays[n] = '\0';
    snprintf(out, sizeof out, "OK relays=%s id=%s addr=%u kicks=%lu ms=%" PRIu32 "\n", relays,
             host.opt.cfg.board_id, (unsigned)host.opt.cfg.meter_addr, host.kicks, hal_millis());
    answer(out);
}

static void meter(const char *args)
{
    long mv, ma, dw, soc, pv;
    unsigned long long in, out;
    if (sscanf(args, "%ld %ld %ld %llu %llu %ld %ld", &mv, &ma, &dw, &in, &out, &soc, &pv) != 7) {
        answer("ERR METER-needs-7-integers\n");
        return;
    }
    host.scripted_meter.mv = (int32_t)mv;
    host.scripted_meter.ma = (int32_t)ma;
    host.scripted_meter.dw = (int32_t)dw;
    host.scripted_meter.mwh_in = in;
    host.scripted_meter.mwh_out = out;
    host.scripted_meter.soc_milli = (int16_t)soc;
    host.scripted_meter.pv_dw = (int32_t)pv;
    answer("OK\n");
}

/* One command line; ADVANCE answers later, when the clock got there. */
static void command(char *line)
{
    unsigned long ms;
    if (sscanf(line, "ADVANCE %lu", &ms) == 1) {
        advance_left = (uint32_t)ms;
        ack_owed = 1;
    } else if (strncmp(line, "METER ", 6) == 0) {
        meter(line + 6);
    } else if (strcmp(line, "UNPLUG") == 0) {
        host.plugged = 0;
        answer("OK\n");
    } else if (strcmp(line, "PLUG") == 0) {
        host.plugged = 1;
        answer("OK\n");
    } else if (strcmp(line, "STATE") == 0) {
        state();
    } else {
        answer("ERR unknown-command\n");
    }
}

/* Run buffered commands until one (ADVANCE) leaves time to pass; 1 if any ran. */
static int run_commands(void)
{
    int ran = 0;
    char *end;
    while (!advance_left && !ack_owed && (end = memchr(cmd, '\n', cmd_len)) != NULL) {
        size_t n = (size_t)(end - cmd) + 1u;
        *end = '\0';
        if (n > 1u && end[-1] == '\r')
            end[-1] = '\0';
        command(cmd);
        memmove(cmd, cmd + n, cmd_len - n);
        cmd_len -= n;
        ran = 1;
    }
    return ran;
}

static void step_clock(uint32_t max_ms)
{
    uint32_t step = advance_left, meter = host_meter_due_ms();
    if (max_ms < step)
        step = max_ms;
    if (meter < step)
        step = meter;
    zero_steps = step == 0u ? zero_steps + 1 : 0;
    if (zero_steps > 2) /* something due now did not go: move on rather than spin */
        step = 1;
    host.scripted_ms += step;
    advance_left -= step;
}

void host_script_idle(uint32_t max_ms)
{
    struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {host.opt.control_fd, POLLIN, 0}};
    if (host.scripted_ms - host.last_kick_ms > HOST_WATCHDOG_MS) {
        fputs("board-host: watchdog reset\n", stderr);
        exit(3);
    }
    if (advance_left) {
        step_clock(max_ms);
        return; /* the board polls at the new time before anything else */
    }
    if (ack_owed) {
        char out[32];
        ack_owed = 0;
        snprintf(out, sizeof out, "OK %" PRIu32 "\n", hal_millis());
        answer(out);
    }
    if (run_commands())
        return;
    if (poll(fds, 2, -1) <= 0 || (fds[0].revents & (POLLIN | POLLHUP)))
        return; /* UART bytes (or its end) first: they came before any later command */
    if (fds[1].revents & (POLLIN | POLLHUP)) {
        ssize_t n = read(host.opt.control_fd, cmd + cmd_len, sizeof cmd - cmd_len - 1u);
        if (n <= 0)
            exit(0); /* the driver is gone */
        cmd_len += (size_t)n;
        if (cmd_len >= sizeof cmd - 1u)
            cmd_len = 0; /* no command is that long: drop the junk */
        run_commands();
    }
}
