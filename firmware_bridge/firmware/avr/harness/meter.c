/* The scripted PZEM-017: Modbus RTU function 0x04 over its 8 input registers. */
#include "meter.h"

#include <string.h>

#define GAP_US 4011u /* 3.5 characters at 9600 8N2 (11 bits): the end of an RTU frame */

static uint16_t crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

void meter_init(struct sim_meter *m, uint8_t addr)
{
    memset(m, 0, sizeof *m);
    m->addr = addr;
    m->plugged = 1;
    meter_set(m, 12.6, 0.0, 0.0, 0);
}

void meter_set(struct sim_meter *m, double v, double a, double w, unsigned long wh)
{
    unsigned long dw = (unsigned long)(w * 10.0 + 0.5);
    m->reg[0] = (uint16_t)(v * 100.0 + 0.5);
    m->reg[1] = (uint16_t)(a * 100.0 + 0.5);
    m->reg[2] = (uint16_t)(dw & 0xFFFF);
    m->reg[3] = (uint16_t)(dw >> 16);
    m->reg[4] = (uint16_t)(wh & 0xFFFF);
    m->reg[5] = (uint16_t)(wh >> 16);
    m->reg[6] = 0;
    m->reg[7] = 0;
}

static size_t answer(struct sim_meter *m, uint8_t *out)
{
    size_t n = 0;
    uint16_t crc;
    out[n++] = m->addr;
    out[n++] = 0x04;
    out[n++] = 16;
    for (int r = 0; r < 8; r++) {
        out[n++] = (uint8_t)(m->reg[r] >> 8);
        out[n++] = (uint8_t)(m->reg[r] & 0xFF);
    }
    crc = crc16(out, n);
    if (m->garble)
        crc ^= 0x5A5A;
    out[n++] = (uint8_t)(crc & 0xFF);
    out[n++] = (uint8_t)(crc >> 8);
    m->answers++;
    return n;
}

size_t meter_byte(struct sim_meter *m, uint8_t c, uint64_t now_us, uint8_t *out)
{
    static const uint8_t want[6] = {0, 0x04, 0x00, 0x00, 0x00, 0x08};
    if (m->req_len > 0 && now_us - m->last_byte_us > GAP_US)
        m->req_len = 0;
    m->last_byte_us = now_us;
    if (m->req_len < sizeof m->req)
        m->req[m->req_len++] = c;
    if (m->req_len < sizeof m->req)
        return 0;
    m->req_len = 0;
    m->requests++;
    if (m->req[0] != m->addr || memcmp(m->req + 1, want + 1, 5) != 0 ||
        crc16(m->req, 6) != (uint16_t)(m->req[6] | m->req[7] << 8) || !m->plugged)
        return 0; /* not for us, not a read we know, garbled, or unplugged: silence */
    return answer(m, out);
}
