/* Timer0 CTC at 1 kHz: 18.432 MHz / 256 = 72 kHz, 72 counts a millisecond (exact). */
#include "timer.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#define COUNTS_PER_MS (F_CPU / 256ul / 1000ul)

#if F_CPU % 256000ul != 0
#error "F_CPU must be a multiple of 256 kHz for an exact millisecond (18.432 MHz is)"
#endif

static volatile uint32_t millis;

void timer_init(uint32_t start_ms)
{
    millis = start_ms;
    TCCR0A = (uint8_t)_BV(WGM01);           /* CTC */
    OCR0A = (uint8_t)(COUNTS_PER_MS - 1u);
    TIMSK0 = (uint8_t)_BV(OCIE0A);
    TCCR0B = (uint8_t)_BV(CS02);             /* clk / 256 */
}

ISR(TIMER0_COMPA_vect) { millis++; }

uint32_t timer_millis(void)
{
    uint32_t m;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { m = millis; }
    return m;
}

uint16_t timer_fine(void) { return TCNT0; }
