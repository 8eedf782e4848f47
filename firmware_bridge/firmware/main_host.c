/* board-host: the firmware core on a PC, its UART on stdin/stdout (e.g. a pty's master). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "board.h"
#include "hal_host.h"

static const char USAGE[] =
    "usage: board-host [--id ID] [--kind producer|consumer] [--relays N] [--failsafe-ms MS]\n"
    "                  [--report-ms MS] [--power W] [--speed X] [--millis-start MS]\n"
    "                  [--meter-addr N] [--meter-ms MS] [--eeprom FILE] [--control-fd FD]\n"
    "Speaks meter-board protocol v2 on stdin/stdout; relay 0 passes --power W, with energy\n"
    "counted --speed times (0.001..1000000) faster than wall-clock time, declared in HELLO.\n"
    "--eeprom keeps the board id and meter address (CONFIG) across runs. --control-fd: the\n"
    "clock and meter follow commands on that socket (hal_host_script.c), for scenarios.\n";

static int stdout_flags = -1;

static void on_signal(int sig)
{
    (void)sig;
    host.stopping = 1;
}

static void restore_stdout(void)
{
    if (stdout_flags >= 0)
        fcntl(STDOUT_FILENO, F_SETFL, stdout_flags);
}

static void usage_error(const char *what, const char *value)
{
    fprintf(stderr, "board-host: bad %s %s\n%s", what, value ? value : "(missing)", USAGE);
    exit(2);
}

static unsigned long number(const char *name, const char *text, unsigned long lo, unsigned long hi)
{
    char *end = NULL;
    unsigned long v;
    if (!text || !*text || *text == '-')
        usage_error(name, text);
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno || *end || v < lo || v > hi)
        usage_error(name, text);
    return v;
}

static double real(const char *name, const char *text, double lo, double hi)
{
    char *end = NULL;
    double v;
    if (!text || !*text)
        usage_error(name, text);
    v = strtod(text, &end);
    if (*end || !(v >= lo && v <= hi))
        usage_error(name, text);
    return v;
}

static void parse_args(int argc, char **argv, struct host_options *o)
{
    o->cfg.board_id = "fw1";
    o->cfg.kind = BOARD_CONSUMER;
    o->cfg.relay_count = 1;
    o->cfg.failsafe_ms = 5000;
    o->cfg.report_ms = 500;
    o->power_w = 240.0;
    o->speed = 60.0;
    o->millis_start = 0;
    o->cfg.meter_addr = 1;
    o->meter_ms = 20;
    o->eeprom = NULL;
    o->scripted = 0;
    o->control_fd = -1;
    o->cfg.time_factor_milli = 60000;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "-h") == 0 || strcmp(flag, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        }
        i++;
        if (strcmp(flag, "--id") == 0) {
            size_t n = value ? strlen(value) : 0;
            if (n == 0 || n > BOARD_MAX_ID)
                usage_error("--id", value);
            for (size_t k = 0; k < n; k++)
                if (value[k] < 0x21 || value[k] > 0x7E || value[k] == '*')
                    usage_error("--id", value);
            o->cfg.board_id = value;
        } else if (strcmp(flag, "--kind") == 0) {
            if (value && strcmp(value, "producer") == 0)
                o->cfg.kind = BOARD_PRODUCER;
            else if (value && strcmp(value, "consumer") == 0)
                o->cfg.kind = BOARD_CONSUMER;
            else
                usage_error("--kind", value);
        } else if (strcmp(flag, "--relays") == 0) {
            o->cfg.relay_count = (uint8_t)number(flag, value, 1, BOARD_MAX_RELAYS);
        } else if (strcmp(flag, "--failsafe-ms") == 0) {
            o->cfg.failsafe_ms = (uint32_t)number(flag, value, 1, 0xFFFFFFFFul);
        } else if (strcmp(flag, "--report-ms") == 0) {
            o->cfg.report_ms = (uint32_t)number(flag, value, 1, 0xFFFFFFFFul);
        } else if (strcmp(flag, "--power") == 0) {
            o->power_w = real(flag, value, 0.0, 1e9);
        } else if (strcmp(flag, "--speed") == 0) {
            o->speed = real(flag, value, 0.001, 1e6);
        } else if (strcmp(flag, "--meter-addr") == 0) {
            o->cfg.meter_addr = (uint8_t)number(flag, value, HAL_METER_ADDR_MIN, HAL_METER_ADDR_MAX);
        } else if (strcmp(flag, "--meter-ms") == 0) {
            o->meter_ms = (uint32_t)number(flag, value, 1, 60000);
        } else if (strcmp(flag, "--eeprom") == 0) {
            if (!value || !*value)
                usage_error("--eeprom", value);
            o->eeprom = value;
        } else if (strcmp(flag, "--control-fd") == 0) {
            o->control_fd = (int)number(flag, value, 3, 1000);
            o->scripted = 1;
        } else if (strcmp(flag, "--millis-start") == 0) {
            o->millis_start = (uint32_t)number(flag, value, 0, 0xFFFFFFFFul);
        } else {
            usage_error("option", flag);
        }
    }
    /* The host build counts energy --speed times faster: it says so in HELLO (TF). */
    o->cfg.time_factor_milli = (uint32_t)(o->speed * 1000.0 + 0.5);
}

int main(int argc, char **argv)
{
    static struct board board; /* static, as on a microcontroller */
    struct host_options options;
    struct sigaction sa;

    parse_args(argc, argv, &options);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A full output buffer (nobody reading) must drop lines, not stall the board's timers. */
    stdout_flags = fcntl(STDOUT_FILENO, F_GETFL);
    if (stdout_flags >= 0) {
        fcntl(STDOUT_FILENO, F_SETFL, stdout_flags | O_NONBLOCK);
        atexit(restore_stdout);
    }

    hal_host_init(&options);
    board_init(&board); /* sends the boot banner */
    while (!host.stopping)
        board_step(&board);
    return 0;
}
