/* Protocol v2 framing for the board: decoding request lines and building replies in fixed
 * buffers, with the number formats they use (fixed-point integers, no printf). The CRC is
 * CRC-16/CCITT-FALSE over the session id (the key) and the frame; v1's XOR byte is kept only
 * to answer a v1 host's HELLO in a framing it can read. */
#ifndef GRIDBID_FRAME_H
#define GRIDBID_FRAME_H

#include <stdint.h>

#include "board.h"

#define FRAME_REQUEST '>'
#define FRAME_REPLY '<'
#define FRAME_EVENT '!'

#define ERR_CHECKSUM 1u
#define ERR_VERB 2u
#define ERR_ARG 3u
#define ERR_FRAME 4u
#define ERR_REPLAY 5u
#define ERR_SESSION 6u
#define ERR_STORAGE 7u

#define FRAME_CRC_DIGITS 4u     /* protocol v2 */
#define FRAME_LEGACY_DIGITS 2u  /* protocol v1: XOR byte */
#define FRAME_SESSION_LEN 8u    /* hex digits of a session id */

#define FRAME_MAX_WORDS 6u  /* a verb and up to five arguments are kept; more are counted */

/* One decoded frame: pointers into the caller's line, no copies. */
struct frame_in {
    char kind;
    uint16_t id;   /* after a failed decode: the id to answer with (0 if unreadable) */
    uint8_t argc;  /* arguments after the verb, counted even beyond FRAME_MAX_WORDS */
    uint8_t body_len;  /* characters before the '*' */
    uint16_t crc;      /* the check digits the frame carries (not yet verified) */
    const char *word[FRAME_MAX_WORDS];
    uint8_t word_len[FRAME_MAX_WORDS];
};

/* One frame under construction; `full` is set once something did not fit. */
struct frame_out {
    char buf[BOARD_MAX_LINE + 6];  /* frame, '*', four hex digits, '\n' */
    uint8_t len;
    uint8_t full;
};

/* Decode a line without its '\n' (a final '\r' is allowed) whose check is `digits` hex digits:
 * 0, or the ERR code it earns. The check itself is left to frame_check / frame_xor. */
uint8_t frame_decode(const char *line, uint8_t n, uint8_t digits, struct frame_in *f);
/* Whether a decoded frame's CRC matches under the key (NULL: no session). */
uint8_t frame_check(const struct frame_in *f, const char *line, const char *key);
/* The id of a frame that failed to decode, when it can still be read, else 0. */
uint16_t frame_salvage_id(const char *line, uint8_t n);
uint8_t frame_word_is(const char *word, uint8_t n, const char *text);
/* Decimal digits only, any length; values above `limit` come out as limit + 1. */
uint8_t frame_parse_uint(const char *w, uint8_t n, uint32_t limit, uint32_t *out);
/* Digits with optionally '.' and 1..3 decimals (at most 9 integer digits), as thousandths. */
uint8_t frame_parse_milli(const char *w, uint8_t n, uint64_t *out);

uint16_t frame_crc(const char *key, const char *body, uint8_t n);  /* key: 8 chars or NULL */
uint8_t frame_xor(const char *body, uint8_t n);                     /* protocol v1 */
void frame_begin(struct frame_out *f, char kind, uint16_t id);
void frame_word(struct frame_out *f, const char *word);  /* " word" */
void frame_text(struct frame_out *f, const char *text);  /* appended as is */
void frame_char(struct frame_out *f, char c);
/* value / 10^decimals with exactly `decimals` digits after the point. */
void frame_fixed(struct frame_out *f, int64_t value, uint8_t decimals);
void frame_ufixed(struct frame_out *f, uint64_t value, uint8_t decimals);
/* Frames the UART took only part of since boot (saturating): TXLOST= in readings. */
extern uint16_t frame_tx_lost;

/* Close with "*CRC\n" (keyed with the session, or none for NULL) and write it; 0 (nothing
 * written) if it is over BOARD_MAX_LINE. */
uint8_t frame_send(struct frame_out *f, const char *key);
/* The same with a v1 XOR checksum: only for the answer to a v1 host's HELLO. */
uint8_t frame_send_legacy(struct frame_out *f);

#endif
