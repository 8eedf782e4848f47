/* Protocol v1 framing: the malformed-frame rules of docs/PROTOCOL.md, in the emulator's
 * order, and bounded building of outgoing frames. No libc. */
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
        decimals = (uint8_t)(n - dot - 1u);
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

uint8_t frame_decode(const char *line, uint8_t raw_len, struct frame_in *f)
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
            star = i;  /* the last one, as the checksum is what follows it */
            has_star = 1;
        }
    }
    if (n == 0 || n > BOARD_MAX_LINE || !is_kind(line[0]))
        return ERR_FRAME;
    /* Everything wrong in the `*CS` tail is a checksum error. */
    if (!has_star || n - star != 3u || !is_hex_upper(line[star + 1u]) ||
        !is_hex_upper(line[star + 2u]))
        return ERR_CHECKSUM;
    for (uint8_t i = 0; i < star; i++)
        if (line[i] == '*')
            return ERR_FRAME;  /* more than one '*' */
    if (frame_checksum(line, star) !=
        (uint8_t)(hex_value(line[star + 1u]) << 4 | hex_value(line[star + 2u])))
        return ERR_CHECKSUM;
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

/* -- building --------------------------------------------------------------------------------- */

uint8_t frame_checksum(const char *body, uint8_t n)
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

uint8_t frame_send(struct frame_out *f)
{
    if (f->full || f->len + 3u > BOARD_MAX_LINE)
        return 0;
    uint8_t cs = frame_checksum(f->buf, f->len);
    f->buf[f->len++] = '*';
    f->buf[f->len++] = HEX[cs >> 4];
    f->buf[f->len++] = HEX[cs & 0x0Fu];
    f->buf[f->len++] = '\n';
    hal_uart_write(f->buf, f->len);
    return 1;
}
