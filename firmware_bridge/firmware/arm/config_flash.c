/* Board id and meter address in the last 1 KB flash page (0x0800FC00 on the F030C8): read at
 * boot, rewritten by hal_config_save (page erase, then half-word programming, then a check). */
#include "hal_arm.h"
#include "../pzem_rtu.h"
#include "stm32f030.h"

#define CONFIG_MAGIC 0x47424431ul  /* "GBD1": a page this firmware wrote */
#define DEFAULT_METER_ADDR 1u      /* a PZEM-017's factory address */

/* What the page holds; a blank (all 0xFF) or torn page fails the magic or the CRC. */
struct stored {
    uint32_t magic;
    uint8_t meter_addr;
    uint8_t id_len;
    char id[HAL_MAX_ID];
    uint16_t crc;  /* pzem_crc16 over everything before it */
};

extern const struct stored _config_page;  /* from the linker script */

static uint8_t valid_id(const char *id, size_t n)
{
    if (n < 1u || n > HAL_MAX_ID)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] < 0x21 || id[i] > 0x7E || id[i] == '*')
            return 0;
    return 1;
}

static uint16_t stored_crc(const struct stored *s)
{
    return pzem_crc16((const uint8_t *)s, offsetof(struct stored, crc));
}

static char id_buf[HAL_MAX_ID + 1];

/* A fresh board's id: "f0-" and 8 hex digits folded from the chip's 96-bit unique id, so two
 * unconfigured boards on one bridge still differ. */
static void default_id(void)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t h = 0x811C9DC5ul;  /* FNV-1a */
    for (uint32_t i = 0; i < 12u; i++)
        h = (h ^ *(const volatile uint8_t *)(UID_BASE + i)) * 0x01000193ul;
    id_buf[0] = 'f';
    id_buf[1] = '0';
    id_buf[2] = '-';
    for (uint8_t i = 0; i < 8u; i++)
        id_buf[3u + i] = hex[(h >> (28u - 4u * i)) & 0xFu];
    id_buf[11] = '\0';
}

void config_load(struct hal_config *c)
{
    const struct stored *s = &_config_page;
    c->board_id = id_buf;
    if (s->magic == CONFIG_MAGIC && s->crc == stored_crc(s) && valid_id(s->id, s->id_len) &&
        s->meter_addr >= HAL_METER_ADDR_MIN && s->meter_addr <= HAL_METER_ADDR_MAX) {
        for (uint8_t i = 0; i < s->id_len; i++)
            id_buf[i] = s->id[i];
        id_buf[s->id_len] = '\0';
        c->meter_addr = s->meter_addr;
        return;
    }
    default_id();
    c->meter_addr = DEFAULT_METER_ADDR;
}

static uint32_t flash_wait(void)
{
    uint32_t sr;
    while ((sr = FLASH_SR) & FLASH_SR_BSY)
        ;  /* erase ~30 ms, a half-word ~50 us: far inside the watchdog's second */
    FLASH_SR = FLASH_SR_EOP | FLASH_SR_PGERR | FLASH_SR_WRPRTERR;  /* write 1 to clear */
    return sr & (FLASH_SR_PGERR | FLASH_SR_WRPRTERR);
}

static uint32_t flash_erase_page(uint32_t addr)
{
    uint32_t err;
    FLASH_CR = FLASH_CR_PER;
    FLASH_AR = addr;
    FLASH_CR = FLASH_CR_PER | FLASH_CR_STRT;
    err = flash_wait();
    FLASH_CR = 0;
    return err;
}

static uint32_t flash_program(uint32_t addr, const uint16_t *words, size_t count)
{
    uint32_t err = 0;
    FLASH_CR = FLASH_CR_PG;
    for (size_t i = 0; i < count && !err; i++) {
        REG16(addr + 2u * i) = words[i];  /* the F0 programs flash 16 bits at a time */
        err = flash_wait();
    }
    FLASH_CR = 0;
    return err;
}

/* Erase and program the page with `s`; 0 when it reads back the same. */
static int flash_store(const struct stored *s)
{
    uint32_t addr = (uint32_t)(uintptr_t)&_config_page;
    uint32_t err;
    FLASH_KEYR = FLASH_KEY1;  /* unlock */
    FLASH_KEYR = FLASH_KEY2;
    err = flash_erase_page(addr);
    if (!err)
        err = flash_program(addr, (const uint16_t *)(const void *)s, sizeof *s / 2u);
    FLASH_CR = FLASH_CR_LOCK;
    if (err)
        return -1;
    for (size_t i = 0; i < sizeof *s; i++)
        if (((const volatile uint8_t *)addr)[i] != ((const uint8_t *)s)[i])
            return -1;
    return 0;
}

int config_store(const char *id, uint8_t meter_addr)
{
    static struct stored s;  /* static: 4-byte aligned, off the stack */
    size_t n = 0;
    while (n <= HAL_MAX_ID && id[n] != '\0')
        n++;
    if (!valid_id(id, n) || meter_addr < HAL_METER_ADDR_MIN || meter_addr > HAL_METER_ADDR_MAX)
        return -1;
    for (size_t i = 0; i < sizeof s.id; i++)
        s.id[i] = i < n ? id[i] : '\0';
    s.magic = CONFIG_MAGIC;
    s.meter_addr = meter_addr;
    s.id_len = (uint8_t)n;
    s.crc = stored_crc(&s);
    return flash_store(&s);
}
