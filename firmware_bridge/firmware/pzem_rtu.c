/* Modbus RTU master for a PZEM-017: request, byte-wise answer, CRC and timeout checks. */
#include "pzem_rtu.h"

#define FN_READ_INPUT 0x04u
#define FN_EXCEPTION 0x80u  /* set on the function code of an exception answer */
#define EXCEPTION_LEN 5u    /* address, 0x84, code, CRC (2) */

uint16_t pzem_crc16(const uint8_t *data, size_t n)
{
    uint16_t crc = 0xFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (uint8_t bit = 0; bit < 8u; bit++)
            crc = (crc & 1u) ? (uint16_t)((crc >> 1) ^ 0xA001u) : (uint16_t)(crc >> 1);
    }
    return crc;
}

void pzem_begin(struct pzem_rtu *p, uint8_t addr, uint32_t now_ms, uint8_t out[PZEM_REQUEST_LEN])
{
    uint16_t crc;
    out[0] = addr;
    out[1] = FN_READ_INPUT;
    out[2] = 0x00u;  /* first register 0x0000 */
    out[3] = 0x00u;
    out[4] = 0x00u;  /* register count */
    out[5] = PZEM_REGISTERS;
    crc = pzem_crc16(out, 6u);
    out[6] = (uint8_t)(crc & 0xFFu);  /* Modbus sends the CRC low byte first */
    out[7] = (uint8_t)(crc >> 8);
    p->state = PZEM_WAIT;
    p->error = PZEM_ERR_NONE;
    p->addr = addr;
    p->len = 0;
    p->sent_ms = now_ms;
}

/* How long the answer under way will be, once its first bytes say: 0 while unknown. */
static uint8_t expected_len(const struct pzem_rtu *p)
{
    if (p->len < 2u)
        return 0;
    if (p->buf[1] == (FN_READ_INPUT | FN_EXCEPTION))
        return EXCEPTION_LEN;
    return PZEM_REPLY_LEN;
}

static void fail(struct pzem_rtu *p, uint8_t error)
{
    p->state = PZEM_FAILED;
    p->error = error;
}

/* A complete answer: its CRC, then its shape. */
static void finish(struct pzem_rtu *p)
{
    uint16_t crc = pzem_crc16(p->buf, (size_t)(p->len - 2u));
    if (p->buf[p->len - 2u] != (crc & 0xFFu) || p->buf[p->len - 1u] != (crc >> 8))
        fail(p, PZEM_ERR_CRC);
    else if (p->buf[1] == (FN_READ_INPUT | FN_EXCEPTION))
        fail(p, PZEM_ERR_EXCEPTION);
    else if (p->buf[2] != 2u * PZEM_REGISTERS)
        fail(p, PZEM_ERR_FRAME);
    else
        p->state = PZEM_DONE;
}

void pzem_feed(struct pzem_rtu *p, uint8_t byte)
{
    uint8_t want;
    if (p->state != PZEM_WAIT)
        return;
    if (p->len == 0u && byte != p->addr)
        return;  /* not the start of our meter's answer: noise, or the echo of a bus glitch */
    if (p->len == 1u && (byte & ~FN_EXCEPTION) != FN_READ_INPUT) {
        /* Not a function-4 answer after all (noise, or inside another device's frame that
         * held our address byte): scan on for the start, this byte included. */
        p->len = 0;
        if (byte != p->addr)
            return;
    }
    p->buf[p->len++] = byte;
    want = expected_len(p);
    if (want != 0u && p->len >= want)
        finish(p);
}

static uint16_t word_at(const uint8_t *b, uint8_t reg)
{
    return (uint16_t)((uint16_t)b[3u + 2u * reg] << 8 | b[4u + 2u * reg]);  /* big-endian */
}

uint8_t pzem_check(struct pzem_rtu *p, uint32_t now_ms, struct pzem_values *v)
{
    if (p->state == PZEM_WAIT && now_ms - p->sent_ms >= PZEM_TIMEOUT_MS)
        fail(p, p->len ? PZEM_ERR_FRAME : PZEM_ERR_TIMEOUT);  /* a cut-off answer is garbled */
    if (p->state == PZEM_DONE) {
        /* 32-bit values come low word first (PZEM-017 manual; firmware_bridge/pzem.py _u32). */
        v->centivolts = word_at(p->buf, 0);
        v->centiamps = word_at(p->buf, 1);
        v->deciwatts = (uint32_t)word_at(p->buf, 3) << 16 | word_at(p->buf, 2);
        v->wh = (uint32_t)word_at(p->buf, 5) << 16 | word_at(p->buf, 4);
    }
    return p->state;
}
