/* Protocol v2 framing: the malformed-frame rules of docs/PROTOCOL.md, in the emulator's
 * order, the session-keyed CRC, and bounded building of outgoing frames. No libc. */
#include "frame.h"

static const char HEX[] = "0123456789ABCDEF";

static uint8_t is_digit(char c) { return c >= '0' && c <= '9'; }

static uint8_t is_hex_upper(char c) { return is_digit(c) || (c >= 'A' && c <= 'F'); }

static uint8_t hex_value(char c) { return (uint8_t)(is_digit(c) ? c - '0' : c - 'A' + 10); }

static uint8_t is_kind(char c)
{
    return c == FRAME_REQUEST || c == FRAME_REPLY || c == FRAME_EVENT;
}

/* -- parsing ---------------------------------------------------------------------------------- */

uint8_t frame_word_is(const char *word, uint8_t n, const char *text)
{
    uint8_t i = 0;
    for (; i < n; i++)
        if (text[i] != word[i])
            return 0;
    return text[i] == '\0';
}

uint8_t frame_parse_uint(const char *w, uint8_t n, uint32_t limit, uint32_t *out)
{
    uint32_t v = 0;
    if (n == 0)
        return 0;
    for (uint8_t i = 0; i < n; i++) {
        if (!is_digit(w[i]))
            return 0;
        v = v * 10u + (uint32_t)(w[i] - '0');
        if (v > limit)
            v = limit + 1u;  /* saturate: "000…001" is still 1, a long number stays too big */
    }
    *out = v;
    return 1;
}

uint8_t frame_parse_milli(const char *w, uint8_t n, uint64_t *out)
{
    uint8_t dot = 0, decimals = 0;
    uint64_t v = 0;
    while (dot < n && w[dot] != '.')
        dot++;
    if (dot < n)
        decimals = (uint8_t)(n - dot - 1);  /* int arithmetic: no sign conversion on 16-bit int */
    if (dot == 0 || dot > 9u || (dot < n && (decimals < 1u || decimals > 3u)))
        return 0;
    for (uint8_t i = 0; i < n; i++) {
        if (i == dot)
            continue;
        if (!is_digit(w[i]))
            return 0;
        v = v * 10u + (uint64_t)(w[i] - '0');
    }
    for (; decimals < 3u; decimals++)
        v *= 10u;
    *out = v;
    return 1;
}

uint16_t frame_salvage_id(const char *line, uint8_t n)
{
    uint8_t end = 1;
    uint32_t id = 0;
    if (n == 0 || !is_kind(line[0]))
        return 0;
    while (end < n && line[end] != ' ' && line[end] != '*')
        end++;
    if (end - 1u > 5u || !frame_parse_uint(line + 1, (uint8_t)(end - 1u), 0xFFFFu, &id) ||
        id > 0xFFFFu)
        return 0;
    return (uint16_t)id;
}

uint8_t frame_decode(const char *line, uint8_t raw_len, uint8_t digits, struct frame_in *f)
{
    uint8_t n = raw_len, star = 0, has_star = 0, pos = 1, start;
    uint32_t id = 0;
    f->id = frame_salvage_id(line, raw_len);
    if (n > 0 && line[n - 1u] == '\r')
        n--;
    for (uint8_t i = 0; i < n; i++) {
        if ((uint8_t)line[i] < 0x20u || (uint8_t)line[i] > 0x7Eu)
            return ERR_FRAME;  /* control or non-ASCII */
        if (line[i] == '*') {
            star = i;  /* the last one, as the check is what follows it */
            has_star = 1;
        }
    }
    if (n == 0 || n > BOARD_MAX_LINE || !is_kind(line[0]))
        return ERR_FRAME;
    /* Everything wrong in the `*CRC` tail is a checksum error. */
    if (!has_star || (uint8_t)(n - star) != (uint8_t)(digits + 1u))
        return ERR_CHECKSUM;
    f->crc = 0;
    for (uint8_t i = (uint8_t)(star + 1u); i < n; i++) {
        if (!is_hex_upper(line[i]))
            return ERR_CHECKSUM;
        f->crc = (uint16_t)(f->crc << 4 | hex_value(line[i]));
    }
    for (uint8_t i = 0; i < star; i++)
        if (line[i] == '*')
            return ERR_FRAME;  /* more than one '*' */
    f->body_len = star;
    while (pos < star && line[pos] != ' ')
        pos++;
    if (pos - 1u > 5u || !frame_parse_uint(line + 1, (uint8_t)(pos - 1u), 0xFFFFu, &id) ||
        id > 0xFFFFu || pos >= star)
        return ERR_FRAME;  /* bad id, or no verb */
    f->kind = line[0];
    f->id = (uint16_t)id;
    f->argc = 0;
    for (uint8_t w = 0; pos < star; w++) {
        start = (uint8_t)(pos + 1u);
        pos = start;
        while (pos < star && line[pos] != ' ')
            pos++;
        if (pos == start)
            return ERR_FRAME;  /* empty field: double or trailing space */
        if (w < FRAME_MAX_WORDS) {
            f->word[w] = line + start;
            f->word_len[w] = (uint8_t)(pos - start);
        }
        if (w > 0 && f->argc < 0xFFu)
            f->argc++;
    }
    return 0;
}

uint8_t frame_check(const struct frame_in *f, const char *line, const char *key)
{
    return frame_crc(key, line, f->body_len) == f->crc;
}

/* -- building --------------------------------------------------------------------------------- */

static uint16_t crc_update(uint16_t crc, const char *data, uint8_t n)
{
    for (uint8_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint16_t)(uint8_t)data[i] << 8);
        for (uint8_t bit = 0; bit < 8u; bit++)
            crc = (uint16_t)(crc & 0x8000u ? ((uint32_t)crc << 1) ^ 0x1021u : (uint32_t)crc << 1);
    }
    return crc;
}

uint16_t frame_crc(const char *key, const char *body, uint8_t n)
{
    uint16_t crc = 0xFFFFu;  /* CRC-16/CCITT-FALSE */
    if (key)
        crc = crc_update(crc, key, FRAME_SESSION_LEN);
    return crc_update(crc, body, n);
}

uint8_t frame_xor(const char *body, uint8_t n)
{
    uint8_t cs = 0;
    for (uint8_t i = 0; i < n; i++)
        cs ^= (uint8_t)body[i];
    return cs;
}

void frame_char(struct frame_out *f, char c)
{
    if (f->len >= BOARD_MAX_LINE) {
        f->full = 1;
        return;
    }
    f->buf[f->len++] = c;
}

void frame_text(struct frame_out *f, const char *text)
{
    while (*text)
        frame_char(f, *text++);
}

void frame_word(struct frame_out *f, const char *word)
{
    frame_char(f, ' ');
    frame_text(f, word);
}

void frame_ufixed(struct frame_out *f, uint64_t value, uint8_t decimals)
{
    char digits[24];  /* 2^64 has 20 digits; leading zeros pad up to `decimals` + 1 */
    uint8_t n = 0;
    while ((value > 0u || n <= decimals) && n < sizeof digits) {
        digits[n++] = (char)('0' + (char)(value % 10u));
        value /= 10u;
    }
    while (n > 0) {  /* most significant first */
        n--;
        frame_char(f, digits[n]);
        if (n == decimals && n > 0)
            frame_char(f, '.');
    }
}

void frame_fixed(struct frame_out *f, int64_t value, uint8_t decimals)
{
    if (value < 0) {
        frame_char(f, '-');
        frame_ufixed(f, (uint64_t)0 - (uint64_t)value, decimals);  /* right for INT64_MIN */
    } else {
        frame_ufixed(f, (uint64_t)value, decimals);
    }
}

void frame_begin(struct frame_out *f, char kind, uint16_t id)
{
    f->len = 0;
    f->full = 0;
    frame_char(f, kind);
    frame_ufixed(f, id, 0);
}

uint16_t frame_tx_lost;
static uint8_t line_broken;  /* the UART took only part of the last frame */

/* Write a whole frame. A short write is no silent drop: it is counted (TXLOST= in readings)
 * and the broken line is ended before the next frame, so that one still reads. */
static void transmit(const char *data, uint8_t n)
{
    if (!line_broken || hal_uart_write("\n", 1u) == 1u) {
        size_t put = hal_uart_write(data, n);
        line_broken = put > 0u && put < n;  /* nothing taken breaks no line */
        if (put == n)
            return;
    }
    if (frame_tx_lost < 0xFFFFu)
        frame_tx_lost++;
}

static uint8_t send_with(struct frame_out *f, uint16_t check, uint8_t digits)
{
    if (f->full || f->len + 1u + digits > BOARD_MAX_LINE)
        return 0;
    f->buf[f->len++] = '*';
    for (uint8_t d = digits; d > 0; d--)
        f->buf[f->len++] = HEX[((uint32_t)check >> (4u * (d - 1u))) & 0x0Fu];
    f->buf[f->len++] = '\n';
    transmit(f->buf, f->len);
    return 1;
}

uint8_t frame_send(struct frame_out *f, const char *key)
{
    return send_with(f, frame_crc(key, f->buf, f->len), FRAME_CRC_DIGITS);
}

uint8_t frame_send_legacy(struct frame_out *f)
{
    return send_with(f, frame_xor(f->buf, f->len), FRAME_LEGACY_DIGITS);
}
