/* The board's verbs, and what of the board core they use (board.c): one frame in, its
 * reply (and events) out. */
#ifndef GRIDBID_VERBS_H
#define GRIDBID_VERBS_H

#include <stdint.h>

#include "board.h"
#include "frame.h"

/* Run a fresh in-session request (not HELLO): READ, RELAY, HB, BUDGET or CONFIG; ERR 2/3
 * otherwise. */
void verbs_dispatch(struct board *b, const struct frame_in *r);
/* Open a new session and answer with it (unkeyed), then send its first READING. */
void verbs_hello(struct board *b, const struct frame_in *r);
/* Answer a v1 host's HELLO in v1 framing with version 2; 0 if the line is no such HELLO. */
uint8_t verbs_legacy_hello(struct board *b, const char *line, uint8_t n);

/* From board.c. */
const char *board_key(const struct board *b);  /* the session, or NULL without one */
void board_set_relay(struct board *b, uint8_t n, uint8_t on);
uint8_t board_meter_ok(const struct board *b);  /* a good reading, no fault since */
uint8_t board_send_reading(struct board *b, int32_t reply_id);  /* -1: a READING event */
void board_send_error(const char *k, uint16_t id, uint8_t code, const char *text);

#endif
