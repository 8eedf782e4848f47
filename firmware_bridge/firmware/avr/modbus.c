/* Modbus RTU on USART1: the request out through a small TX buffer and the UDRE/TXC interrupts,
 * the answer collected by the RX interrupt and handed to the core's PZEM master (../pzem_rtu.c,
 * the ARM HAL's too), which frames and checks it (address, function, length, CRC) and gives up
 * after PZEM_TIMEOUT_MS. */
#include "modbus.h"

#include <avr/interrupt.h>
#include <avr/io.h>

#define DE_PIN PD4           /* RS-485 transceiver DE and /RE: high while we transmit */
#define RX_SIZE 32u

static volatile uint8_t tx_buf[PZEM_REQUEST_LEN];
static volatile uint8_t tx_len, tx_pos;
static volatile uint8_t rx_buf[RX_SIZE];
static volatile uint8_t rx_len;
static uint8_t rx_fed; /* rx_buf's bytes handed to the master so far */
static struct pzem_rtu rtu; /* the request in flight (its address: a CONFIG may change ours) */
static uint32_t sent_at;
static uint8_t ever_sent;

void modbus_init(void)
{
    DDRD |= (uint8_t)_BV(DE_PIN);
    PORTD &= (uint8_t)~_BV(DE_PIN); /* listen (and keep the bus free) until we send */
    UBRR1 = (uint16_t)(F_CPU / (16ul * METER_BAUD) - 1ul); /* 119 at 18.432 MHz: exact */
    UCSR1A = 0;
    UCSR1C = (uint8_t)(_BV(USBS1) | _BV(UCSZ11) | _BV(UCSZ10)); /* 8N2, as the PZEM wants */
    UCSR1B = (uint8_t)(_BV(RXEN1) | _BV(TXEN1) | _BV(RXCIE1) | _BV(TXCIE1));
}

ISR(USART1_RX_vect)
{
    uint8_t c = UDR1;
    if (rx_len < RX_SIZE)
        rx_buf[rx_len++] = c; /* past an answer's length: noise the master would ignore */
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

static void send_request(uint8_t addr, uint32_t now_ms)
{
    uint8_t req[PZEM_REQUEST_LEN];
    pzem_begin(&rtu, addr, now_ms, req);
    cli();
    rx_len = 0; /* whatever came before this request is not its answer */
    rx_fed = 0;
    for (uint8_t i = 0; i < sizeof req; i++)
        tx_buf[i] = req[i];
    tx_len = sizeof req;
    tx_pos = 0;
    PORTD |= (uint8_t)_BV(DE_PIN);
    UCSR1B |= (uint8_t)_BV(UDRIE1);
    sei();
}

uint8_t modbus_step(uint32_t now_ms, uint8_t addr, struct pzem_values *values)
{
    uint8_t n, state;
    if (rtu.state != PZEM_WAIT) {
        if (ever_sent && now_ms - sent_at < METER_PERIOD_MS)
            return MODBUS_IDLE;
        send_request(addr, now_ms);
        sent_at = now_ms;
        ever_sent = 1;
        return MODBUS_SENT;
    }
    cli();
    n = rx_len;
    sei();
    while (rx_fed < n)
        pzem_feed(&rtu, rx_buf[rx_fed++]); /* bytes below rx_len are no longer written */
    state = pzem_check(&rtu, now_ms, values);
    if (state == PZEM_DONE)
        return MODBUS_ANSWERED;
    return state == PZEM_FAILED ? MODBUS_FAILED : MODBUS_WAITING;
}
