/* Reset and vector table of the STM32F030x8: the core loads SP and the reset handler from the
 * first two words; reset_handler copies .data, zeroes .bss and runs main(). */
#include <stdint.h>

#include "stm32f030.h"

/* From the linker script. */
extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;

int main(void);
void reset_handler(void);
void usart1_irq(void);
void usart2_irq(void);
void systick_irq(void);
void hal_arm_relays_low(void);

/* Anything unexpected (a fault, a stray interrupt) parks here; the watchdog then resets the
 * board, and reset opens every relay. */
static void default_handler(void)
{
    for (;;)
        irq_disable();
}

typedef void (*vector)(void);

#define D default_handler
/* 16 core entries, then the 32 interrupts of RM0360 table 29; the first is the stack top. No
 * entry is left 0: a stray interrupt must land in default_handler, not at address 0. */
__attribute__((section(".vectors"), used))
static const vector vectors[16 + IRQ_COUNT] = {
    (vector)(uintptr_t)&_stack_top, reset_handler, D /* NMI */, D /* HardFault */,
    D, D, D, D, D, D, D, D /* SVCall */, D, D, D /* PendSV */, systick_irq,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,                   /* IRQ 0..15 */
    D, D, D, D, D, D, D, D, D, D, D, usart1_irq, usart2_irq, D, D, D, /* IRQ 16..31 */
};
#undef D

void reset_handler(void)
{
    /* Relays first: pins float from reset until here, only the board's pull-downs hold them. */
    hal_arm_relays_low();
    for (uint32_t *src = &_data_load, *dst = &_data_start; dst < &_data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &_bss_start; dst < &_bss_end;)
        *dst++ = 0u;
    main();
    for (;;)
        wait_for_interrupt();
}
