/* Modbus RTU master: request out through a small TX buffer and the UDRE/TXC interrupts, the
 * answer collected by the RX interrupt, checked (address, function, length, CRC) when complete
 * or given up on after METER_TIMEOUT_MS. */
#include "modbus.h"

#include <avr/interrupt.h>
#include <avr/io.h>

#define DE_PIN PD4           /* RS-485 transceiver DE and /RE: high while we transmit */
#define FN_READ_INPUT 0x04u
#define ANSWER_LEN (3u + 2u * METER_REGISTERS + 2u)
#define EXCEPTION_LEN 5u
#define RX_SIZE 32u

static volatile uint8_t tx_buf[8];
static volatile uint8_t tx_len, tx_pos;
static volatile uint8_t rx_buf[RX_SIZE];
static volatile uint8_t rx_len;
static uint8_t state = MODBUS_IDLE;
static uint32_t sent_at;
static uint8_t ever_sent;
static uint8_t asked; /* the address the request in flight went to (a CONFIG may change it) */

void modbus_init(void)
{
    DDRD |= (uint8_t)_BV(DE_PIN);
    PORTD &= (uint8_t)~_BV(DE_PIN); /* listen (and keep the bus free) until we send */
    UBRR1 = (uint16_t)(F_CPU / (16ul * METER_BAUD) - 1ul); /* 119 at 18.432 MHz: exact */
    UCSR1A = 0;
    UCSR1C = (uint8_t)(_BV(USBS1) | _BV(UCSZ11) | _BV(UCSZ10)); /* 8N2, as the PZEM wants */
    UCSR1B = (uint8_t)(_BV(RXEN1) | _BV(TXEN1) | _BV(RXCIE1) | _BV(TXCIE1));
}

uint16_t modbus_crc(const uint8_t *data, uint8_t n)
{
    uint16_t crc = 0xFFFFu;
    for (uint8_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (uint8_t b = 0; b < 8u; b++)
            crc = (crc & 1u) ? (uint16_t)((crc >> 1) ^ 0xA001u) : (uint16_t)(crc >> 1);
    }
    return crc;
}

ISR(USART1_RX_vect)
{
    uint8_t c = UDR1;
    if (rx_len < RX_SIZE)
        rx_buf[rx_len++] = c; /* more than an answer is garbage: the length check fails it */
}

ISR(USART1_UDRE_vect)
{
    if (tx_pos >= tx_len) {
        UCSR1B &= (uint8_t)~_BV(UDRIE1);
        return;
    }
    UDR1 = tx_buf[tx_pos++];
}

/* The last stop bit is out: release the bus so the meter can answer. */
ISR(USART1_TX_vect)
{
    if (tx_pos >= tx_len)
        PORTD &= (uint8_t)~_BV(DE_PIN);
}

static void send_request(uint8_t addr)
{
    uint8_t req[8] = {addr, FN_READ_INPUT, 0, 0, 0, METER_REGISTERS, 0, 0};
    uint16_t crc = modbus_crc(req, 6);
    req[6] = (uint8_t)(crc & 0xFFu); /* Modbus sends its CRC low byte first */
    req[7] = (uint8_t)(crc >> 8);
    cli();
    rx_len = 0; /* whatever came before this request is not its answer */
    for (uint8_t i = 0; i < sizeof req; i++)
        tx_buf[i] = req[i];
    tx_len = sizeof req;
    tx_pos = 0;
    PORTD |= (uint8_t)_BV(DE_PIN);
    UCSR1B |= (uint8_t)_BV(UDRIE1);
    sei();
}

/* 1: a whole, well-formed answer from addr is in rx_buf (copied to regs); 0: not (yet). */
static uint8_t answer_ok(uint8_t addr, uint8_t n, struct pzem_registers *regs)
{
    uint8_t frame[ANSWER_LEN];
    for (uint8_t i = 0; i < n && i < ANSWER_LEN; i++)
        frame[i] = rx_buf[i];
    if (n != ANSWER_LEN || frame[0] != addr || frame[1] != FN_READ_INPUT ||
        frame[2] != 2u * METER_REGISTERS)
        return 0;
    if (modbus_crc(frame, ANSWER_LEN - 2u) !=
        (uint16_t)(frame[ANSWER_LEN - 2u] | (uint16_t)frame[ANSWER_LEN - 1u] << 8))
        return 0;
    for (uint8_t r = 0; r < METER_REGISTERS; r++)
        regs->reg[r] = (uint16_t)((uint16_t)frame[3u + 2u * r] << 8 | frame[4u + 2u * r]);
    return 1;
}

uint8_t modbus_step(uint32_t now_ms, uint8_t addr, struct pzem_registers *regs)
{
    uint8_t n;
    if (state != MODBUS_WAITING) {
        if (ever_sent && now_ms - sent_at < METER_PERIOD_MS)
            return MODBUS_IDLE;
        send_request(addr);
        asked = addr;
        sent_at = now_ms;
        ever_sent = 1;
        state = MODBUS_WAITING;
        return MODBUS_SENT;
    }
    cli();
    n = rx_len;
    sei();
    if (n >= ANSWER_LEN || (n == EXCEPTION_LEN && (rx_buf[1] & 0x80u))) {
        state = answer_ok(asked, n, regs) ? MODBUS_ANSWERED : MODBUS_FAILED;
        return state;
    }
    if (now_ms - sent_at >= METER_TIMEOUT_MS) {
        state = answer_ok(asked, n, regs) ? MODBUS_ANSWERED : MODBUS_FAILED;
        return state;
    }
    return MODBUS_WAITING;
}
