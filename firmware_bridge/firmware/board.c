/* Protocol v2 board side: sessions, replay refusal, verbs, budgets, heartbeat failsafe, line
 * assembly (a reading's fields: reading.c). */
#include "board.h"

#include "frame.h"
#include "verbs.h"

static uint8_t is_space(char c)
{
    /* what Python's bytes.strip() removes: the emulator ignores lines of only these */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The CRC key of everything the board sends but a HELLO's reply: its session, if open. */
const char *board_key(const struct board *b) { return b->has_session ? b->session : NULL; }

/* -- time, meter and budgets --------------------------------------------------------------- */

static void take_time(struct board *b)
{
    uint32_t now = hal_millis();
    uint32_t dt = now - b->clock_ms;  /* unsigned: right across a wrap of the millis counter */
    b->clock_ms = now;
    b->uptime_ms += dt;
    b->quiet_ms = b->quiet_ms > 0xFFFFFFFFul - dt ? 0xFFFFFFFFul : b->quiet_ms + dt;
    b->report_ms = b->report_ms > 0xFFFFFFFFul - dt ? 0xFFFFFFFFul : b->report_ms + dt;
    b->meter_age_ms = b->meter_age_ms > 0xFFFFFFFFul - dt ? 0xFFFFFFFFul : b->meter_age_ms + dt;
}

static uint64_t budgeted_counter(const struct board *b, const struct meter *m)
{
    return b->cfg->kind == BOARD_PRODUCER ? m->mwh_out : m->mwh_in;
}

/* A good reading: take the energy since the last one off the budgets of the relays that
 * were closed at any moment since the last good reading's request (the first reading only
 * sets the mark); the next reading's record starts at this one's request. */
static void meter_budgets(struct board *b, const struct meter *m)
{
    uint64_t now = budgeted_counter(b, m);
    uint64_t used = now > b->metered_mwh ? now - b->metered_mwh : 0u;
    if (b->meter_state == BOARD_METER_WAIT)
        used = 0;  /* nothing before the first reading is known, nor charged */
    b->metered_mwh = now;
    for (uint8_t i = 0; i < b->relay_count; i++) {
        struct board_budget *bu = &b->budget[i];
        if (bu->set && b->charged[i])
            bu->left_mwh = bu->left_mwh > used ? bu->left_mwh - used : 0u;
        b->charged[i] = b->since_ask[i];
    }
}

/* A request went out: the meter samples from now on, so the record of the reading after
 * the one it brings starts here. */
static void meter_asked(struct board *b)
{
    for (uint8_t i = 0; i < b->relay_count; i++)
        b->since_ask[i] = b->relays[i];
}

/* Switching never waits for the meter: the relay moves first, its energy is accounted at
 * the good readings that cover the time it was closed (charged[], since_ask[]). */
void board_set_relay(struct board *b, uint8_t n, uint8_t on)
{
    b->relays[n] = on;
    hal_relay_set(n, on);
    if (on) {
        b->charged[n] = 1;
        b->since_ask[n] = 1;
    }
}

uint8_t board_meter_ok(const struct board *b) { return b->meter_state == BOARD_METER_OK; }

/* An unsolicited frame numbered in the session; none without a session (nobody could
 * accept it) or once the ids ran out (the host re-HELLOs long before). */
static void send_event(struct board *b, const char *verb, int32_t arg)
{
    struct frame_out f;
    if (!b->has_session || b->event_id == 0xFFFFu)
        return;
    frame_begin(&f, FRAME_EVENT, (uint16_t)(b->event_id + 1u));
    frame_word(&f, verb);
    if (arg >= 0) {
        frame_char(&f, ' ');
        frame_fixed(&f, arg, 0);
    }
    if (frame_send(&f, board_key(b)))
        b->event_id++;
}

/* A spent budget opens its relay; the board says so once, as it opened the relay itself
 * and RELAY n 1 is refused until the budget is raised or cleared. Without a meter a budget
 * cannot be counted down, so budget-held relays open too (the prepaid limit holds). */
static void enforce_budgets(struct board *b)
{
    for (uint8_t i = 0; i < b->relay_count; i++) {
        if (!b->budget[i].set || !b->relays[i])
            continue;
        if (b->budget[i].left_mwh == 0u) {
            board_set_relay(b, i, 0);
            send_event(b, "EXHAUSTED", i);
        } else if (b->meter_state != BOARD_METER_OK) {
            board_set_relay(b, i, 0);  /* the METER FAULT event and readings tell the host */
        }
    }
}

static void meter_event(struct board *b, const char *state)
{
    struct frame_out f;
    if (!b->has_session || b->event_id == 0xFFFFu)
        return;
    frame_begin(&f, FRAME_EVENT, (uint16_t)(b->event_id + 1u));
    frame_word(&f, "METER");
    frame_word(&f, state);
    if (frame_send(&f, board_key(b)))
        b->event_id++;
}

/* Take what the meter has, never waiting: a good reading, a fault, or nothing new. */
static void poll_meter(struct board *b)
{
    struct meter m;
    uint8_t polled = hal_meter_poll(&m);
    uint8_t got = (uint8_t)(polled & (uint8_t)~METER_ASKED);
    if (got == METER_OK) {
        meter_budgets(b, &m);
        b->meter = m;
        b->has_reading = 1;
        b->meter_age_ms = 0;
        if (b->meter_state == BOARD_METER_FAULT)
            meter_event(b, "OK");
        b->meter_state = BOARD_METER_OK;
    } else if (b->meter_state == BOARD_METER_OK &&
               (got == METER_FAULT || b->meter_age_ms >= BOARD_METER_STALE_MS)) {
        b->meter_state = BOARD_METER_FAULT;  /* reported once per outage */
        meter_event(b, "FAULT");
    } else if (b->meter_state == BOARD_METER_WAIT && got == METER_FAULT) {
        b->meter_state = BOARD_METER_FAULT;  /* dead from boot: readings say so at once */
        meter_event(b, "FAULT");
    }
    if (polled & METER_ASKED)  /* after the answer: that one's request went out before */
        meter_asked(b);
}

/* -- replies ----------------------------------------------------------------------------------- */

/* An ERR reply keyed with `k`: the session, or NULL for the answer to a HELLO. */
void board_send_error(const char *k, uint16_t id, uint8_t code, const char *text)
{
    struct frame_out f;
    frame_begin(&f, FRAME_REPLY, id);
    frame_word(&f, "ERR");
    frame_char(&f, ' ');
    frame_ufixed(&f, code, 0);
    frame_word(&f, text);
    frame_send(&f, k);
}

/* -- frames ------------------------------------------------------------------------------------ */

/* One received line (without its '\n'): decode it, check its session and freshness, answer. */
static void handle_line(struct board *b, const char *line, uint8_t n)
{
    struct frame_in r;
    const char *k;
    uint8_t hello, err = frame_decode(line, n, FRAME_CRC_DIGITS, &r);
    if (err) {
        if (err == ERR_CHECKSUM && verbs_legacy_hello(b, line, n))
            return;
        board_send_error(board_key(b), r.id, err,
                         err == ERR_CHECKSUM ? "bad-checksum" : "bad-frame");
        return;
    }
    hello = r.kind == FRAME_REQUEST && frame_word_is(r.word[0], r.word_len[0], "HELLO");
    if (!b->has_session && !hello) {
        board_send_error(NULL, r.id, ERR_SESSION, "no-session-send-HELLO");
        return;
    }
    k = hello ? NULL : b->session;  /* a HELLO and its reply are keyed with no session */
    if (!frame_check(&r, line, k)) {
        board_send_error(k, r.id, ERR_CHECKSUM, "bad-checksum");
        return;
    }
    if (r.kind != FRAME_REQUEST) {
        board_send_error(k, r.id, ERR_FRAME, "only-requests-accepted");
        return;
    }
    if (r.id == 0u) {
        board_send_error(k, 0, ERR_FRAME, "request-id-0");
        return;
    }
    if (hello) {
        if (r.argc)
            board_send_error(NULL, r.id, ERR_ARG, "wrong-argument-count");
        else
            verbs_hello(b, &r);
        return;
    }
    if (r.id <= b->last_id) {  /* a repeated or older id: a replay, never acted on */
        board_send_error(k, r.id, ERR_REPLAY, "replay");
        return;
    }
    b->last_id = r.id;
    /* Any fresh request proves the host is alive, even one answered with ERR 2 or 3. */
    b->quiet_ms = 0;
    b->failsafe_tripped = 0;
    verbs_dispatch(b, &r);
    enforce_budgets(b);
}

static void end_line(struct board *b)
{
    if (!b->line_blank) {
        if (b->line_overflow)  /* the input is dropped; the ERR tells a waiting host at once */
            board_send_error(board_key(b), frame_salvage_id(b->line, b->line_len), ERR_FRAME,
                       "frame-too-long");
        else
            handle_line(b, b->line, b->line_len);
    }
    b->line_len = 0;
    b->line_overflow = 0;
    b->line_blank = 1;
}

/* -- public ------------------------------------------------------------------------------------ */

/* The boot banner: one unkeyed line (no session yet) telling a host the board just
 * started, so a bridge that reset it by opening the port (DTR) knows to HELLO now. */
static void send_banner(const struct board *b)
{
    struct frame_out f;
    frame_begin(&f, FRAME_EVENT, 0);
    frame_word(&f, "BOOT");
    frame_char(&f, ' ');
    frame_ufixed(&f, BOARD_PROTOCOL_VERSION, 0);
    frame_word(&f, b->cfg->board_id);
    frame_word(&f, b->cfg->kind == BOARD_PRODUCER ? "producer" : "consumer");
    frame_char(&f, ' ');
    frame_ufixed(&f, b->relay_count, 0);
    frame_send(&f, NULL);
}

void board_init(struct board *b)
{
    b->cfg = hal_config();
    b->relay_count = b->cfg->relay_count;
    if (b->relay_count < 1u)
        b->relay_count = 1;
    if (b->relay_count > BOARD_MAX_RELAYS)
        b->relay_count = BOARD_MAX_RELAYS;
    for (uint8_t i = 0; i < BOARD_MAX_RELAYS; i++) {
        b->relays[i] = 0;
        b->charged[i] = 0;
        b->since_ask[i] = 0;
        b->budget[i].set = 0;
        b->budget[i].left_mwh = 0;
        if (i < b->relay_count)
            hal_relay_set(i, 0);  /* a board powers on with every relay open */
    }
    b->metered_mwh = 0;
    b->meter_state = BOARD_METER_WAIT;  /* no values until the meter first answers */
    b->has_reading = 0;
    b->meter_age_ms = 0;
    b->line_len = 0;
    b->line_overflow = 0;
    b->line_blank = 1;
    b->clock_ms = hal_millis();
    b->uptime_ms = 0;
    b->quiet_ms = 0;
    b->report_ms = 0;
    b->failsafe_tripped = 0;
    b->has_session = 0;  /* until the host says HELLO */
    b->last_id = 0;
    b->event_id = 0;
    send_banner(b);
}

void board_rx(struct board *b, const char *data, size_t n)
{
    take_time(b);
    for (size_t i = 0; i < n; i++) {
        char c = data[i];
        if (c == '\n') {
            end_line(b);
            continue;
        }
        if (!is_space(c))
            b->line_blank = 0;
        if (b->line_len < sizeof b->line)
            b->line[b->line_len++] = c;
        else
            b->line_overflow = 1;
    }
}

/* Relays open first, in one pass with no meter wait; the energy they passed until now is
 * charged at the good readings that cover it (charged[], since_ask[]). */
static void check_failsafe(struct board *b)
{
    if (b->failsafe_tripped || b->quiet_ms < b->cfg->failsafe_ms)
        return;
    b->failsafe_tripped = 1;  /* once per silence */
    for (uint8_t i = 0; i < b->relay_count; i++)
        if (b->relays[i])
            board_set_relay(b, i, 0);
    send_event(b, "FAILSAFE", -1);
}

void board_poll(struct board *b)
{
    take_time(b);
    check_failsafe(b);
    poll_meter(b);
    enforce_budgets(b);
    if (b->report_ms >= b->cfg->report_ms) {
        /* Skip missed slots rather than burst: a late reading is not worth three. */
        b->report_ms = b->report_ms - b->cfg->report_ms >= b->cfg->report_ms
                           ? 0u : b->report_ms - b->cfg->report_ms;
        board_send_reading(b, -1);
    }
}

static uint32_t until(uint32_t elapsed, uint32_t period)
{
    return elapsed >= period ? 0u : period - elapsed;
}

uint32_t board_idle_ms(const struct board *b)
{
    uint32_t next = BOARD_TICK_MS;
    uint32_t report = until(b->report_ms, b->cfg->report_ms);
    if (!b->failsafe_tripped && until(b->quiet_ms, b->cfg->failsafe_ms) < next)
        next = until(b->quiet_ms, b->cfg->failsafe_ms);
    if (b->has_session && report < next)
        next = report;
    return next;
}

void board_step(struct board *b)
{
    char buf[32];
    size_t n;
    board_poll(b);  /* first: a line waiting at boot meets a meter already asked */
    while ((n = hal_uart_read(buf, sizeof buf)) > 0)  /* bounded by what has arrived */
        board_rx(b, buf, n);
    hal_watchdog_kick();
    hal_idle(board_idle_ms(b));
}
