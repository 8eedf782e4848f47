/* A scripted PZEM-017 on the simulated AVR's USART1: answers "read input registers 0..7"
 * with the values the test set, or stays silent (unplugged), or answers with a bad CRC. */
#ifndef GRIDBID_HARNESS_METER_H
#define GRIDBID_HARNESS_METER_H

#include <stddef.h>
#include <stdint.h>

#define METER_ANSWER_MAX 21

struct sim_meter {
    uint8_t addr;          /* the Modbus address it answers to */
    uint8_t plugged;       /* 0: silent, as an unplugged or dead meter */
    uint8_t garble;        /* 1: answers with a wrong CRC */
    uint16_t reg[8];       /* the PZEM-017's input registers */
    uint8_t req[8];        /* the request being received */
    size_t req_len;
    uint64_t last_byte_us; /* a gap of 3.5 characters starts a new request */
    unsigned long requests, answers;
};

void meter_init(struct sim_meter *m, uint8_t addr);
/* volts, amps, watts, watt-hours as the meter's registers (0.01 V, 0.01 A, 0.1 W, 1 Wh). */
void meter_set(struct sim_meter *m, double v, double a, double w, unsigned long wh);
/* One byte from the AVR at time now_us; returns the answer's length (0: none) in out. */
size_t meter_byte(struct sim_meter *m, uint8_t c, uint64_t now_us, uint8_t *out);

#endif
