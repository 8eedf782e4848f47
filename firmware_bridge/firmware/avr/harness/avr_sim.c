/* avr-sim: the ATmega1284P board firmware in libsimavr, USART0 on a pty the bridge opens,
 * a scripted PZEM-017 on USART1, commands on stdin, what happened (in simulated ms) on stdout.
 *
 *   avr-sim FIRMWARE.elf [--id ID] [--meter-addr N (0: the meter answers any)] [--scripted]
 * stdout: "PTY /dev/pts/N" first, then "LINE-IN <ms>" per line fed to the board, "RELAY <n> <0|1>
 *   <ms>" per relay pin change, answers to commands. stdin: "set V A W WH", "unplug", "plug",
 *   "garble 0|1", "time", "stats", "quit" (EOF quits too); with --scripted the AVR runs only
 *   during "advance MS" / "advance-to MS" (then until its line is quiet), "until-line MS" (until it sent a
 *   line), as fast as simavr goes, and "relays N" tells the relay pins.
 * Time is the AVR's: the firmware sleeps between ticks and simavr then sleeps the host for the
 * simulated time, so a mostly idle board runs at about wall-clock speed. */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <avr_eeprom.h>
#include <avr_ioport.h>
#include <avr_uart.h>
#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_time.h>

#include "../config_layout.h"

#include "meter.h"

#define F_CPU 18432000u
#define BRIDGE_BYTE_US 87u   /* 10 bits at 115200: the pace the bridge's bytes go in at */
#define METER_BYTE_US 1146u  /* 11 bits (8N2) at 9600 */
#define METER_DELAY_US 5000u /* a PZEM answers a few ms after the request */
#define POLL_US 1000u

static avr_t *avr;
static int pty_master = -1;
static volatile sig_atomic_t quitting;
static struct sim_meter meter;
static int scripted;                 /* --scripted: time moves only on "advance" / "until-line" */
static unsigned long lines_out;      /* '\n's the board sent the bridge */
static avr_cycle_count_t last_out;   /* the cycle of its last byte */
static char relay_state[9] = "00000000";

struct feed {
    uint8_t buf[4096];
    size_t head, len;
    int xon;
    avr_irq_t *in;
    avr_uart_t *uart; /* its input FIFO: the next byte goes in once the firmware took the last */
    uint32_t byte_us;
};
static struct feed bridge_in, meter_in;

static double now_ms(void) { return (double)avr->cycle * 1000.0 / (double)avr->frequency; }
static uint64_t now_us(void) { return avr_cycles_to_usec(avr, avr->cycle); }

static void on_signal(int sig) { (void)sig; quitting = 1; }

static void queue_bytes(struct feed *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && f->len < sizeof f->buf; i++, f->len++)
        f->buf[(f->head + f->len) % sizeof f->buf] = p[i];
}

/* One byte into the UART per byte time, as a real line delivers them. */
static avr_cycle_count_t feed_tick(avr_t *a, avr_cycle_count_t when, void *param)
{
    struct feed *f = param;
    (void)a;
    if (f->len == 0)
        return 0;
    if (f->xon && f->uart->input.read == f->uart->input.write) {
        uint8_t c = f->buf[f->head];
        f->head = (f->head + 1) % sizeof f->buf;
        f->len--;
        avr_raise_irq(f->in, c);
        if (f == &bridge_in && c == '\n') /* received one byte time from now */
            printf("LINE-IN %.3f\n", now_ms() + (double)f->uart->cycles_per_byte * 1000.0 /
                                                      (double)avr->frequency);
    }
    return f->len ? when + avr_usec_to_cycles(avr, f->byte_us) : 0;
}

static void start_feed(struct feed *f, uint32_t delay_us)
{
    avr_cycle_timer_cancel(avr, feed_tick, f);
    avr_cycle_timer_register_usec(avr, delay_us ? delay_us : 1, feed_tick, f);
}

static void on_xon(struct avr_irq_t *irq, uint32_t v, void *p) { (void)irq; (void)v; ((struct feed *)p)->xon = 1; }
static void on_xoff(struct avr_irq_t *irq, uint32_t v, void *p) { (void)irq; (void)v; ((struct feed *)p)->xon = 0; }

static void on_bridge_out(struct avr_irq_t *irq, uint32_t v, void *p)
{
    uint8_t c = (uint8_t)v;
    (void)irq;
    (void)p;
    last_out = avr->cycle;
    lines_out += c == '\n';
    if (write(pty_master, &c, 1) < 0 && errno != EAGAIN)
        perror("avr-sim: pty write"); /* EAGAIN: nobody reads the pty; the line drops it */
}

static void on_meter_out(struct avr_irq_t *irq, uint32_t v, void *p)
{
    uint8_t out[METER_ANSWER_MAX];
    size_t n = meter_byte(&meter, (uint8_t)v, now_us(), out);
    (void)irq;
    (void)p;
    if (n) {
        queue_bytes(&meter_in, out, n);
        start_feed(&meter_in, METER_DELAY_US);
    }
}

static void on_relay(struct avr_irq_t *irq, uint32_t v, void *p)
{
    (void)irq;
    relay_state[(intptr_t)p] = v ? '1' : '0';
    printf("RELAY %d %u %.3f\n", (int)(intptr_t)p, v ? 1u : 0u, now_ms());
}

static void command(char *line)
{
    double v, a, w;
    unsigned long wh;
    int on;
    if (sscanf(line, "set %lf %lf %lf %lu", &v, &a, &w, &wh) == 4) {
        meter_set(&meter, v, a, w, wh);
        printf("OK set %.3f\n", now_ms());
    } else if (strncmp(line, "unplug", 6) == 0) {
        meter.plugged = 0;
        printf("OK unplug %.3f\n", now_ms());
    } else if (strncmp(line, "plug", 4) == 0) {
        meter.plugged = 1;
        printf("OK plug %.3f\n", now_ms());
    } else if (sscanf(line, "garble %d", &on) == 1) {
        meter.garble = (uint8_t)(on != 0);
        printf("OK garble %.3f\n", now_ms());
    } else if (strncmp(line, "time", 4) == 0) {
        printf("TIME %.3f\n", now_ms());
    } else if (strncmp(line, "stats", 5) == 0) {
        printf("STATS requests=%lu answers=%lu %.3f\n", meter.requests, meter.answers, now_ms());
    } else if (strncmp(line, "quit", 4) == 0) {
        quitting = 1;
    } else if (line[0] != '\0') {
        printf("ERR unknown command: %s\n", line);
    }
}

/* Each simulated millisecond: bytes from the bridge (pty) and commands (stdin), no waiting. */
static avr_cycle_count_t poll_tick(avr_t *a, avr_cycle_count_t when, void *param)
{
    static char cmd[256];
    static size_t cmd_len;
    struct pollfd fds[2] = {{pty_master, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    uint8_t buf[512];
    (void)param;
    if (poll(fds, scripted ? 1 : 2, 0) > 0) {
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(pty_master, buf, sizeof buf);
            if (n > 0) {
                int idle = bridge_in.len == 0;
                queue_bytes(&bridge_in, buf, (size_t)n);
                if (idle)
                    start_feed(&bridge_in, 0);
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0)
                quitting = 1; /* the test is gone */
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == '\n' || cmd_len == sizeof cmd - 1) {
                    cmd[cmd_len] = '\0';
                    command(cmd);
                    cmd_len = 0;
                } else {
                    cmd[cmd_len++] = (char)buf[i];
                }
            }
        }
    }
    fflush(stdout);
    return when + avr_usec_to_cycles(a, POLL_US);
}

static void no_sleep(avr_t *a, avr_cycle_count_t how_long) { (void)a; (void)how_long; }

/* Run the AVR until `ms` simulated ms passed or stop() says so (then 1). */
static int run_for(double ms, int (*stop)(void))
{
    avr_cycle_count_t end = avr->cycle + avr_usec_to_cycles(avr, (uint32_t)(ms * 1000.0));
    while (avr->cycle < end && !quitting) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            printf("CPU %s %.3f\n", state == cpu_Done ? "done" : "crashed", now_ms());
            quitting = 1;
        }
        if (stop && stop())
            return 1;
    }
    return 0;
}

static unsigned long lines_before;
static int new_line(void) { return lines_out > lines_before; }
/* The bridge's line has been quiet for 1 ms: a reply's events (queued with it) are out. */
static int tx_quiet(void) { return avr->cycle - last_out > avr_usec_to_cycles(avr, 1000); }

/* --scripted: the test owns the clock (tests/firmware/avr_driver.py). */
static void scripted_command(char *line)
{
    double ms;
    int relays;
    if (sscanf(line, "advance %lf", &ms) == 1) {
        run_for(ms, NULL);
        run_for(50, tx_quiet);
        printf("OK advance %.3f\n", now_ms());
    } else if (sscanf(line, "advance-to %lf", &ms) == 1) {
        /* to an absolute time: what the UART exchanges took since is not added again */
        run_for(ms > now_ms() ? ms - now_ms() : 0.0, NULL);
        run_for(50, tx_quiet);
        printf("OK advance-to %.3f\n", now_ms());
    } else if (sscanf(line, "until-line %lf", &ms) == 1) {
        lines_before = lines_out;
        int got = run_for(ms, new_line);
        printf("OK until-line %d %.3f\n", got, now_ms());
    } else if (sscanf(line, "relays %d", &relays) == 1 && relays >= 1 && relays <= 8) {
        printf("OK relays %.*s\n", relays, relay_state);
    } else {
        command(line);
    }
}

static void hook_uart(char name, struct feed *f, avr_irq_notify_t out, uint32_t byte_us)
{
    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS(name), &flags);
    flags &= ~(uint32_t)AVR_UART_FLAG_STDIO; /* its bytes are ours, not simavr's console's */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS(name), &flags);
    f->in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(name), UART_IRQ_INPUT);
    for (avr_io_t *io = avr->io_port; io; io = io->next)
        if (io->irq == f->in) /* UART_IRQ_INPUT is the first of the UART's IRQs */
            f->uart = (avr_uart_t *)io;
    if (!f->uart) {
        fprintf(stderr, "avr-sim: no UART%c in this simavr\n", name);
        exit(1);
    }
    f->byte_us = byte_us;
    f->xon = 1;
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(name), UART_IRQ_OUTPUT), out, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(name), UART_IRQ_OUT_XON), on_xon, f);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(name), UART_IRQ_OUT_XOFF), on_xoff, f);
}

/* The board's identity record, as the firmware's hal_config_save() would have written it. */
static void write_identity(const char *id, uint8_t addr)
{
    struct config_record r;
    avr_eeprom_desc_t d;
    size_t n = strlen(id);
    if (n < 1 || n > CONFIG_MAX_ID) {
        fprintf(stderr, "avr-sim: --id must be 1..%u characters\n", CONFIG_MAX_ID);
        exit(2);
    }
    memset(&r, 0, sizeof r);
    r.magic = CONFIG_MAGIC;
    r.id_len = (uint8_t)n;
    memcpy(r.id, id, n);
    r.meter_addr = addr;
    r.check = config_check(&r);
    d.ee = (uint8_t *)&r;
    d.offset = CONFIG_ADDR;
    d.size = sizeof r;
    avr_ioctl(avr, AVR_IOCTL_EEPROM_SET, &d);
}

static int open_pty(void)
{
    int slave;
    struct termios t;
    if (openpty(&pty_master, &slave, NULL, NULL, NULL) < 0) {
        perror("avr-sim: openpty");
        exit(1);
    }
    tcgetattr(slave, &t);
    cfmakeraw(&t); /* bytes as they are: no echo, no CR/LF translation */
    tcsetattr(slave, TCSANOW, &t);
    fcntl(pty_master, F_SETFL, fcntl(pty_master, F_GETFL) | O_NONBLOCK);
    printf("PTY %s\n", ttyname(slave));
    fflush(stdout);
    return slave; /* kept open, so the master never reads EIO between two clients */
}

int main(int argc, char **argv)
{
    elf_firmware_t fw;
    const char *id = NULL;
    unsigned long addr = 1;
    struct sigaction sa;
    int slave;
    if (argc < 2) {
        fprintf(stderr, "usage: avr-sim FIRMWARE.elf [--id ID] [--meter-addr N] [--scripted]\n");
        return 2;
    }
    for (int i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--scripted") == 0) {
            scripted = 1;
            i--;
        } else if (i + 1 >= argc) {
            fprintf(stderr, "avr-sim: %s needs a value\n", argv[i]);
            return 2;
        } else if (strcmp(argv[i], "--id") == 0)
            id = argv[i + 1];
        else if (strcmp(argv[i], "--meter-addr") == 0 && (addr = strtoul(argv[i + 1], NULL, 10)) <= 247)
            continue;
        else {
            fprintf(stderr, "avr-sim: bad option %s %s\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "avr-sim: cannot read %s\n", argv[1]);
        return 1;
    }
    strcpy(fw.mmcu, "atmega1284p");
    fw.frequency = F_CPU;
    avr = avr_make_mcu_by_name(fw.mmcu);
    if (!avr || avr_init(avr) != 0) {
        fprintf(stderr, "avr-sim: no %s in this simavr\n", fw.mmcu);
        return 1;
    }
    avr_load_firmware(avr, &fw);
    avr->frequency = F_CPU;
    if (scripted)
        avr->sleep = no_sleep; /* as fast as it goes: the test says how long to run */
    meter_init(&meter, (uint8_t)addr);
    if (id) /* the board asks address 1 when its meter answers any (--meter-addr 0) */
        write_identity(id, (uint8_t)(addr ? addr : 1));
    slave = open_pty();
    hook_uart('0', &bridge_in, on_bridge_out, BRIDGE_BYTE_US);
    hook_uart('1', &meter_in, on_meter_out, METER_BYTE_US);
    for (intptr_t n = 0; n < 8; n++)
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('C'), (int)n), on_relay, (void *)n);
    avr_cycle_timer_register_usec(avr, POLL_US, poll_tick, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (scripted && !quitting) {
        char line[256];
        if (!fgets(line, sizeof line, stdin)) {
            quitting = 1; /* EOF: the test is done with us */
            break;
        }
        line[strcspn(line, "\n")] = '\0';
        scripted_command(line);
        fflush(stdout);
    }
    while (!quitting) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) {
            printf("CPU %s %.3f\n", state == cpu_Done ? "done" : "crashed", now_ms());
            break;
        }
    }
    fflush(stdout);
    close(slave);
    return 0;
}
