/* Protocol v2 core of a gridbid meter board (docs/PROTOCOL.md).
 *
 * C99, no heap, no stdio: the core talks to hardware only through hal.h. Feed it the
 * UART's bytes with board_rx() and call board_poll() from the main loop, often (every few
 * ms): it runs the budgets, the heartbeat failsafe and the periodic readings.
 */
#ifndef GRIDBID_BOARD_H
#define GRIDBID_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "hal.h"

#define BOARD_PROTOCOL_VERSION 2u
#define BOARD_MAX_LINE 120u  /* characters of a frame, line ending excluded */
#define BOARD_MAX_RELAYS 8u
#define BOARD_MAX_ID 32u     /* characters of a board id */

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
    uint64_t metered_mwh;  /* the budgeted counter (WHOUT or WHIN) when last looked at */

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

#endif
