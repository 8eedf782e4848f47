/* The EEPROM record of a board's identity, shared by the firmware and the simulator harness
 * (plain C, no avr-libc): where the id and meter address live and how the record is checked. */
#ifndef GRIDBID_AVR_CONFIG_LAYOUT_H
#define GRIDBID_AVR_CONFIG_LAYOUT_H

#include <stdint.h>

#define CONFIG_MAGIC 0x47u   /* 'G': a record written by this firmware (erased cells read 0xFF) */
#define CONFIG_MAX_ID 32u
#define CONFIG_ADDR 0u       /* EEPROM offset of the record */

struct config_record {
    uint8_t magic;
    uint8_t id_len;               /* 1..CONFIG_MAX_ID */
    char id[CONFIG_MAX_ID];
    uint8_t meter_addr;           /* Modbus address, 1..247 */
    uint8_t check;                /* config_check() of the bytes before it */
};

/* CRC-8 (polynomial 0x07, as avr-libc's _crc8_ccitt_update) over the record but `check`. */
static inline uint8_t config_check(const struct config_record *r)
{
    const uint8_t *p = (const uint8_t *)r;
    uint8_t crc = 0;
    for (uint8_t i = 0; i < (uint8_t)(sizeof *r - 1u); i++) {
        crc ^= p[i];
        for (uint8_t b = 0; b < 8u; b++)
            crc = (crc & 0x80u) ? (uint8_t)((uint8_t)(crc << 1) ^ 0x07u) : (uint8_t)(crc << 1);
    }
    return crc;
}

#endif
