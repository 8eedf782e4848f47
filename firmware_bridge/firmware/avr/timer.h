/* Timer0 as the millisecond clock: a compare-match interrupt every 1 ms, which also wakes
 * the CPU from idle sleep so the main loop runs at least once a millisecond when asked. */
#ifndef GRIDBID_AVR_TIMER_H
#define GRIDBID_AVR_TIMER_H

#include <stdint.h>

void timer_init(uint32_t start_ms); /* start_ms: first value, to exercise the wrap in tests */
uint32_t timer_millis(void);
uint16_t timer_fine(void); /* the prescaled counter within the millisecond: entropy */

#endif
