/* Protocol v2 verbs of the board: HELLO (and v1's, to refuse it), READ, RELAY, HB, BUDGET,
 * CONFIG. */
#include "verbs.h"

static void ok_begin(struct frame_out *f, uint16_t id, const char *verb)
{
    frame_begin(f, FRAME_REPLY, id);
    frame_word(f, "OK");
    frame_word(f, verb);
}

/* Relay index argument; the reply echoes it as a plain number, as the emulator does. */
static uint8_t relay_arg(const struct board *b, const struct frame_in *r, uint8_t *n)
{
    uint32_t v = 0;
    if (!frame_parse_uint(r->word[1], r->word_len[1], b->relay_count, &v) || v >= b->relay_count)
        return 0;
    *n = (uint8_t)v;
    return 1;
}

/* TF: the time factor as a plain decimal with no trailing zeros (60, 0.5, 1). */
static void time_factor(struct frame_out *f, uint32_t milli)
{
    uint32_t frac = milli % 1000u, scale = 100u;
    frame_ufixed(f, milli / 1000u, 0);
    if (frac == 0u)
        return;
    frame_char(f, '.');
    while (frac > 0u) {
        frame_char(f, (char)('0' + (char)(frac / scale)));
        frac %= scale;
        scale /= 10u;
    }
}

/* What HELLO replies of v2 and v1 share: version, board id, kind, relay count. */
static void hello_fields(struct frame_out *f, const struct board *b)
{
    frame_char(f, ' ');
    frame_ufixed(f, BOARD_PROTOCOL_VERSION, 0);
    frame_word(f, b->cfg->board_id);
    frame_word(f, b->cfg->kind == BOARD_PRODUCER ? "producer" : "consumer");
    frame_char(f, ' ');
    frame_ufixed(f, b->relay_count, 0);
}

/* A new session: its id goes out unkeyed in the reply, everything after is keyed with it.
 * HELLO is no heartbeat: a recorded one proves nobody is alive. */
void verbs_hello(struct board *b, const struct frame_in *r)
{
    static const char HEX[] = "0123456789ABCDEF";
    struct frame_out f;
    uint32_t random = hal_random32();
    for (uint8_t i = 0; i < FRAME_SESSION_LEN; i++)
        b->session[i] = HEX[(random >> (28u - 4u * i)) & 0x0Fu];
    b->has_session = 1;
    b->last_id = r->id;
    b->event_id = 0;
    ok_begin(&f, r->id, "HELLO");
    hello_fields(&f, b);
    frame_word(&f, "SESSION=");
    for (uint8_t i = 0; i < FRAME_SESSION_LEN; i++)
        frame_char(&f, b->session[i]);
    frame_word(&f, "TF=");
    time_factor(&f, b->cfg->time_factor_milli);
    frame_send(&f, NULL);
    /* A host that (re)connects learns relay states and budgets at once. */
    board_send_reading(b, -1);
    b->report_ms = 0;
}

/* A v1 host's HELLO gets a v1-framed reply naming version 2, so it refuses this board in
 * words ("board speaks protocol v2"); nothing else of v1 is understood. */
uint8_t verbs_legacy_hello(struct board *b, const char *line, uint8_t n)
{
    struct frame_in r;
    struct frame_out f;
    if (frame_decode(line, n, FRAME_LEGACY_DIGITS, &r) || frame_xor(line, r.body_len) != r.crc ||
        r.kind != FRAME_REQUEST || !frame_word_is(r.word[0], r.word_len[0], "HELLO") || r.argc)
        return 0;
    ok_begin(&f, r.id, "HELLO");
    hello_fields(&f, b);
    frame_send_legacy(&f);
    return 1;
}

static void on_relay(struct board *b, const struct frame_in *r)
{
    struct frame_out f;
    uint8_t n = 0;
    const char *state = r->word[2];
    if (!relay_arg(b, r, &n)) {
        board_send_error(board_key(b), r->id, ERR_ARG, "no-such-relay");
        return;
    }
    if (r->word_len[2] != 1 || (state[0] != '0' && state[0] != '1')) {
        board_send_error(board_key(b), r->id, ERR_ARG, "state-not-0-or-1");
        return;
    }
    if (state[0] == '1' && b->budget[n].set && b->budget[n].left_mwh == 0u) {
        board_send_error(board_key(b), r->id, ERR_ARG, "budget-exhausted");
        return;
    }
    if (state[0] == '1' && b->budget[n].set && !board_meter_ok(b)) {
        board_send_error(board_key(b), r->id, ERR_ARG, "no-meter-for-budget");
        return;  /* a budget nobody can count down would not hold */
    }
    board_set_relay(b, n, (uint8_t)(state[0] == '1'));
    ok_begin(&f, r->id, "RELAY");
    frame_char(&f, ' ');
    frame_ufixed(&f, n, 0);
    frame_char(&f, ' ');
    frame_char(&f, state[0]);
    frame_send(&f, board_key(b));
}

static void on_budget(struct board *b, const struct frame_in *r)
{
    struct frame_out f;
    uint8_t n = 0;
    uint64_t mwh = 0;
    uint8_t clear = r->word_len[2] == 1 && r->word[2][0] == '-';
    if (!relay_arg(b, r, &n)) {
        board_send_error(board_key(b), r->id, ERR_ARG, "no-such-relay");
        return;
    }
    if (!clear && !frame_parse_milli(r->word[2], r->word_len[2], &mwh)) {
        board_send_error(board_key(b), r->id, ERR_ARG, "budget-not-Wh-with-3-decimals");
        return;
    }
    b->budget[n].set = (uint8_t)!clear;
    b->budget[n].left_mwh = mwh;
    ok_begin(&f, r->id, "BUDGET");
    frame_char(&f, ' ');
    frame_ufixed(&f, n, 0);
    if (clear)
        frame_word(&f, "-");
    else {
        frame_char(&f, ' ');
        frame_ufixed(&f, mwh, 3);
    }
    frame_send(&f, board_key(b));
}

static void on_read(struct board *b, const struct frame_in *r)
{
    if (!board_send_reading(b, r->id))
        board_send_error(board_key(b), r->id, ERR_FRAME, "reading-too-long");
}

static void on_hb(struct board *b, const struct frame_in *r)
{
    struct frame_out f;
    ok_begin(&f, r->id, "HB");
    frame_send(&f, board_key(b));
}

/* A board id as struct hal_config says: 1..BOARD_MAX_ID of 0x21..0x7E but '*' (the frame
 * parser already refused '*' and anything outside that range). */
static uint8_t id_arg(const struct frame_in *r)
{
    return r->word_len[1] >= 1u && r->word_len[1] <= BOARD_MAX_ID;
}

/* CONFIG <board-id> <meter-addr>: the admin names the board and its meter's address. Both go
 * to persistent storage; the meter address is used from the next meter request on, the id
 * from the next HELLO on (this session keeps the name its host knows it by). */
static void on_config(struct board *b, const struct frame_in *r)
{
    char id[BOARD_MAX_ID + 1];
    uint32_t addr = 0;
    struct frame_out f;
    if (!id_arg(r)) {
        board_send_error(board_key(b), r->id, ERR_ARG, "id-not-1-to-32-chars");
        return;
    }
    if (!frame_parse_uint(r->word[2], r->word_len[2], HAL_METER_ADDR_MAX, &addr) ||
        addr < HAL_METER_ADDR_MIN || addr > HAL_METER_ADDR_MAX) {
        board_send_error(board_key(b), r->id, ERR_ARG, "meter-address-not-1-to-247");
        return;
    }
    for (uint8_t i = 0; i < r->word_len[1]; i++)
        id[i] = r->word[1][i];
    id[r->word_len[1]] = '\0';
    if (hal_config_save(id, (uint8_t)addr) != 0) {
        board_send_error(board_key(b), r->id, ERR_STORAGE, "config-not-saved");
        return;
    }
    ok_begin(&f, r->id, "CONFIG");
    frame_word(&f, id);
    frame_char(&f, ' ');
    frame_ufixed(&f, addr, 0);
    frame_send(&f, board_key(b));
}

struct verb {
    const char *name;
    uint8_t argc;
    void (*run)(struct board *b, const struct frame_in *r);
};

static const struct verb VERBS[] = {
    {"READ", 0, on_read}, {"RELAY", 2, on_relay}, {"HB", 0, on_hb}, {"BUDGET", 2, on_budget},
    {"CONFIG", 2, on_config},
};

void verbs_dispatch(struct board *b, const struct frame_in *r)
{
    for (uint8_t i = 0; i < sizeof VERBS / sizeof VERBS[0]; i++) {
        if (!frame_word_is(r->word[0], r->word_len[0], VERBS[i].name))
            continue;
        if (r->argc != VERBS[i].argc)
            board_send_error(board_key(b), r->id, ERR_ARG, "wrong-argument-count");
        else
            VERBS[i].run(b, r);
        return;
    }
    board_send_error(board_key(b), r->id, ERR_VERB, "unknown-verb");
}
