/* Protocol v2 core of a gridbid meter board (docs/PROTOCOL.md).
 *
 * C99, no heap, no stdio: the core talks to hardware only through hal.h. A target's main is
 *     hal init of its own; board_init(&b); for (;;) board_step(&b);
 * board_step() takes the UART's bytes, polls the meter (never waiting for it), runs the
 * budgets, the heartbeat failsafe and the periodic readings, kicks the watchdog and sleeps
 * (hal_idle) until the next thing is due. board_init() sends the boot banner.
 */
#ifndef GRIDBID_BOARD_H
#define GRIDBID_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"

#define BOARD_PROTOCOL_VERSION 2u
#define BOARD_MAX_LINE 120u  /* characters of a frame, line ending excluded */
#define BOARD_MAX_RELAYS 8u
#define BOARD_MAX_ID HAL_MAX_ID  /* characters of a board id */
#define BOARD_TICK_MS 50u    /* longest sleep between passes: the failsafe's slack at most */
#define BOARD_METER_STALE_MS 3000u  /* no good reading for this long: the meter is dead */

/* What the core knows of its meter. */
#define BOARD_METER_WAIT 0u   /* no good reading since boot: readings carry no meter values */
#define BOARD_METER_OK 1u
#define BOARD_METER_FAULT 2u  /* no answer: values are the last good ones, budgets held open */

/* A local energy budget on one relay. */
struct board_budget {
    uint8_t set;         /* 0: no budget (BUDGET=-) */
    uint64_t left_mwh;   /* what may still flow through the relay, milli-Wh */
};

/* Everything the board remembers; one static instance, no allocation. */
struct board {
    const struct hal_config *cfg;
    uint8_t relay_count;
    uint8_t relays[BOARD_MAX_RELAYS];
    struct board_budget budget[BOARD_MAX_RELAYS];
    uint64_t metered_mwh;  /* the budgeted counter (WHOUT or WHIN) at the last good reading */
    /* Closed at any moment since the request of the last good reading went out: the next
     * good reading's energy is charged to these relays (hal.h, hal_meter_poll). The meter
     * sampled that energy between the two requests' sending and the answer, so a relay
     * opened (failsafe, exhaustion, RELAY) while its energy was still on the way pays. */
    uint8_t charged[BOARD_MAX_RELAYS];
    uint8_t since_ask[BOARD_MAX_RELAYS];  /* closed at any moment since the latest request */

    struct meter meter;    /* the last good reading */
    uint8_t meter_state;   /* BOARD_METER_WAIT, _OK or _FAULT */
    uint8_t has_reading;   /* `meter` holds a good reading (readings carry its values) */
    uint32_t meter_age_ms; /* since the last good reading, saturating */
    uint16_t tx_lost;      /* frames the UART took only part of (saturating) */

    uint8_t has_session;   /* 0 from power-on until a HELLO opens one */
    char session[8];       /* the session id: hex digits, the key of every CRC but HELLO's */
    uint16_t last_id;      /* the newest request id of the session: older ones are replays */
    uint16_t event_id;     /* the last event's id in the session */

    char line[BOARD_MAX_LINE + 1];  /* the line being received, room for its '\r' */
    uint8_t line_len;
    uint8_t line_overflow;  /* too long: the rest is dropped until the next '\n' */
    uint8_t line_blank;     /* only whitespace so far: such lines get no answer */

    uint32_t clock_ms;      /* hal_millis() when time was last taken */
    uint64_t uptime_ms;
    uint32_t quiet_ms;      /* since the last valid frame, saturating */
    uint32_t report_ms;     /* since the last reading was sent */
    uint8_t failsafe_tripped;
};

void board_init(struct board *b);
void board_rx(struct board *b, const char *data, size_t n);
void board_poll(struct board *b);
void board_step(struct board *b);  /* one main-loop pass: rx, poll, watchdog, idle */
uint32_t board_idle_ms(const struct board *b);  /* until the next deadline, <= BOARD_TICK_MS */

#endif
