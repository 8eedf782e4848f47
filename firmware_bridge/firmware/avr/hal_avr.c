/* hal.h on an ATmega1284P: USART0 = bridge, USART1 = PZEM-017 over RS-485, Timer0 = clock,
 * PORTC = relays, EEPROM = board id and meter address, the watchdog, idle sleep. */
#include "hal_avr.h"

#include <avr/eeprom.h>
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include <string.h>
#include <util/atomic.h>

#include "../board.h"
#include "../hal.h"
#include "config_layout.h"
#include "modbus.h"
#include "timer.h"
#include "uart.h"

#ifndef AVR_DEFAULT_ID
#define AVR_DEFAULT_ID "avr-unset" /* an unconfigured board: the admin sets its id */
#endif
#ifndef AVR_MILLIS_START
#define AVR_MILLIS_START 0ul /* Makefile MILLIS_START: tests of the wrap start near 2^32 */
#endif
#define DEFAULT_METER_ADDR 1u
#define SEED_ADDR ((uint16_t)sizeof(struct config_record)) /* boot counter for hal_random32 */

#if AVR_RELAYS < 1 || AVR_RELAYS > 8
#error "AVR_RELAYS: 1..8 relays on PORTC"
#endif

/* Before .data/.bss are set up, before main: relay pins become low outputs, and a watchdog
 * left running by a watchdog reset is stopped (it would otherwise reset us again in 15 ms).
 * Until this runs (reset, bootloader) the pins float: external pull-downs hold them low. */
void hal_early(void) __attribute__((naked, used, section(".init3")));
void hal_early(void)
{
    PORTC = (uint8_t)(PORTC & ~AVR_RELAY_MASK);
    DDRC = (uint8_t)(DDRC | AVR_RELAY_MASK);
    MCUSR = 0;
    wdt_disable();
}

static char board_id[CONFIG_MAX_ID + 1];
static struct hal_config cfg;
static uint8_t meter_addr = DEFAULT_METER_ADDR;
static uint32_t random_state;

static void load_config(void)
{
    struct config_record r;
    eeprom_read_block(&r, (const void *)CONFIG_ADDR, sizeof r);
    if (r.magic == CONFIG_MAGIC && r.id_len >= 1u && r.id_len <= CONFIG_MAX_ID &&
        r.check == config_check(&r) && r.meter_addr >= 1u && r.meter_addr <= 247u) {
        memcpy(board_id, r.id, r.id_len);
        board_id[r.id_len] = '\0';
        meter_addr = r.meter_addr;
    } else { /* erased or torn record: run unconfigured rather than with half an id */
        strcpy(board_id, AVR_DEFAULT_ID);
        meter_addr = DEFAULT_METER_ADDR;
    }
    cfg.board_id = board_id;
    cfg.meter_addr = meter_addr;
    cfg.kind = AVR_KIND;
    cfg.relay_count = AVR_RELAYS;
    cfg.failsafe_ms = 5000;
    cfg.report_ms = 500;
    cfg.time_factor_milli = 1000; /* real time */
}

/* Each boot gets a new seed: a boot counter in EEPROM, so two boots never repeat ids. */
static void seed_random(void)
{
    uint32_t boots = eeprom_read_dword((const uint32_t *)SEED_ADDR);
    eeprom_update_dword((uint32_t *)SEED_ADDR, boots + 1u);
    random_state = (boots + 1u) * 2654435761ul ^ 0x9E3779B9ul;
}

void hal_avr_init(void)
{
    load_config();
    seed_random();
    timer_init(AVR_MILLIS_START);
    uart_init();
    modbus_init();
    SMCR = 0; /* idle sleep (SM2..0 = 0): the UARTs and Timer0 keep running, and wake us */
    wdt_enable(WDTO_500MS);          /* far above the longest pass (a 20 ms transmit wait) */
    sei();
}

const struct hal_config *hal_config(void) { return &cfg; }

/* The core plans its sleeps (board_idle_ms) from the time it last took: hal_idle counts from
 * that same instant, so a deadline is met within the clock's one tick, not two. */
uint32_t hal_avr_last_millis;

uint32_t hal_millis(void)
{
    hal_avr_last_millis = timer_millis();
    return hal_avr_last_millis;
}

void hal_relay_set(uint8_t n, uint8_t on)
{
    if (n >= AVR_RELAYS)
        return;
    if (on)
        PORTC = (uint8_t)(PORTC | (1u << n));
    else
        PORTC = (uint8_t)(PORTC & ~(1u << n));
}

void hal_watchdog_kick(void) { wdt_reset(); }

/* xorshift32 stepped with the sub-millisecond timer and the clock: a host's request timing
 * adds bits a recording cannot predict. Not a hardware RNG (see README.md). */
uint32_t hal_random32(void)
{
    uint32_t x = random_state ^ ((uint32_t)timer_fine() << 16) ^ timer_millis();
    for (uint8_t i = 0; i < 4u; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
    }
    random_state = x;
    return x;
}

int hal_config_save(const char *id, uint8_t addr)
{
    struct config_record r;
    size_t n = strlen(id);
    if (n < 1u || n > CONFIG_MAX_ID || addr < 1u || addr > 247u)
        return 1;
    memset(&r, 0, sizeof r);
    r.magic = CONFIG_MAGIC;
    r.id_len = (uint8_t)n;
    memcpy(r.id, id, n);
    r.meter_addr = addr;
    r.check = config_check(&r);
    eeprom_update_block(&r, (void *)CONFIG_ADDR, sizeof r);
    load_config(); /* what is stored now, read back, is what the board runs with */
    return strcmp(board_id, id) == 0 && meter_addr == addr ? 0 : 1;
}

size_t hal_uart_read(char *data, size_t max) { return uart_read(data, max); }

