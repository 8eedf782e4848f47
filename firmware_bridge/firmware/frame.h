/* Protocol v1 framing for the board: decoding request lines and building replies in fixed
 * buffers, with the number formats they use (fixed-point integers, no printf). */
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

#define FRAME_MAX_WORDS 6u  /* a verb and up to five arguments are kept; more are counted */

/* One decoded frame: pointers into the caller's line, no copies. */
struct frame_in {
    char kind;
    uint16_t id;   /* after a failed decode: the id to answer with (0 if unreadable) */
    uint8_t argc;  /* arguments after the verb, counted even beyond FRAME_MAX_WORDS */
    const char *word[FRAME_MAX_WORDS];
    uint8_t word_len[FRAME_MAX_WORDS];
};

/* One frame under construction; `full` is set once something did not fit. */
struct frame_out {
    char buf[BOARD_MAX_LINE + 4];  /* frame, '*', two hex digits, '\n' */
    uint8_t len;
    uint8_t full;
};

/* Decode a line without its '\n' (a final '\r' is allowed): 0, or the ERR code it earns. */
uint8_t frame_decode(const char *line, uint8_t n, struct frame_in *f);
/* The id of a frame that failed to decode, when it can still be read, else 0. */
uint16_t frame_salvage_id(const char *line, uint8_t n);
uint8_t frame_word_is(const char *word, uint8_t n, const char *text);
/* Decimal digits only, any length; values above `limit` come out as limit + 1. */
uint8_t frame_parse_uint(const char *w, uint8_t n, uint32_t limit, uint32_t *out);
/* Digits with optionally '.' and 1..3 decimals (at most 9 integer digits), as thousandths. */
uint8_t frame_parse_milli(const char *w, uint8_t n, uint64_t *out);

uint8_t frame_checksum(const char *body, uint8_t n);
void frame_begin(struct frame_out *f, char kind, uint16_t id);
void frame_word(struct frame_out *f, const char *word);  /* " word" */
void frame_text(struct frame_out *f, const char *text);  /* appended as is */
void frame_char(struct frame_out *f, char c);
/* value / 10^decimals with exactly `decimals` digits after the point. */
void frame_fixed(struct frame_out *f, int64_t value, uint8_t decimals);
void frame_ufixed(struct frame_out *f, uint64_t value, uint8_t decimals);
/* Close with "*CS\n" and write it; 0 (nothing written) if it is over BOARD_MAX_LINE. */
uint8_t frame_send(struct frame_out *f);

#endif
