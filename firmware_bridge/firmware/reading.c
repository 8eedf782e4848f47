/* The READING event and the READ reply: the board's last good reading, its relays, meter
 * state and budgets as protocol fields (PROTOCOL.md), in the units the bridge parses. */
#include "board.h"

#include "frame.h"
#include "verbs.h"  /* board_key and board_send_reading, shared with the verbs */

static void field(struct frame_out *f, const char *key, int64_t value, uint8_t decimals)
{
    frame_word(f, key);
    frame_fixed(f, value, decimals);
}

static int64_t round_div(int64_t value, int64_t by)
{
    return value >= 0 ? (value + by / 2) / by : -((-value + by / 2) / by);
}

/* V I P WHIN WHOUT (SOC PV) only from a good reading: never zeros before the first one. */
static void meter_fields(struct frame_out *f, const struct meter *m)
{
    field(f, "V=", round_div(m->mv, 10), 2);
    field(f, "I=", m->ma, 3);
    field(f, "P=", m->dw, 1);
    frame_word(f, "WHIN=");
    frame_ufixed(f, m->mwh_in, 3);
    frame_word(f, "WHOUT=");
    frame_ufixed(f, m->mwh_out, 3);
}

static void reading_fields(struct frame_out *f, const struct board *b, uint8_t with_budget)
{
    const struct meter *m = &b->meter;
    uint8_t measured = b->has_reading;
    if (measured)
        meter_fields(f, m);
    frame_word(f, "RELAYS=");
    for (uint8_t i = 0; i < b->relay_count; i++)
        frame_char(f, b->relays[i] ? '1' : '0');
    if (measured && m->soc_milli >= 0)
        field(f, "SOC=", m->soc_milli, 3);
    if (measured && m->pv_dw >= 0)
        field(f, "PV=", m->pv_dw, 1);
    if (b->meter_state != BOARD_METER_OK)
        frame_word(f, b->meter_state == BOARD_METER_WAIT ? "METER=WAIT" : "METER=FAULT");
    if (frame_tx_lost > 0u) {
        frame_word(f, "TXLOST=");
        frame_ufixed(f, frame_tx_lost, 0);
    }
    frame_word(f, "T=");
    frame_ufixed(f, (b->uptime_ms + 50u) / 100u, 1);
    if (!with_budget)
        return;
    frame_word(f, "BUDGET=");
    for (uint8_t i = 0; i < b->relay_count; i++) {
        if (i > 0)
            frame_char(f, ',');
        if (b->budget[i].set)
            frame_ufixed(f, b->budget[i].left_mwh, 3);
        else
            frame_char(f, '-');
    }
}

/* A READ reply (id >= 0) or a READING event, from the last good reading (no meter wait).
 * If it would pass 120 characters, BUDGET (an optional field hosts may ignore) is left out
 * rather than the reading lost. */
uint8_t board_send_reading(struct board *b, int32_t reply_id)
{
    struct frame_out f;
    if (reply_id < 0 && (!b->has_session || b->event_id == 0xFFFFu))
        return 0;  /* as send_event */
    for (uint8_t with_budget = 1;; with_budget = 0) {
        if (reply_id >= 0) {
            frame_begin(&f, FRAME_REPLY, (uint16_t)reply_id);
            frame_text(&f, " OK READ");
        } else {
            frame_begin(&f, FRAME_EVENT, (uint16_t)(b->event_id + 1u));
            frame_word(&f, "READING");
        }
        reading_fields(&f, b, with_budget);
        if (frame_send(&f, board_key(b))) {
            if (reply_id < 0)
                b->event_id++;
            return 1;
        }
        if (!with_budget)
            return 0;
    }
}
