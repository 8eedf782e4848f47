/* STM32F030C8 HAL: pins, SysTick clock, sleep, watchdog, relays, session randomness, config,
 * and main(). The UARTs are in uart.c, the meter in meter.c, flash storage in config_flash.c. */
#include "hal_arm.h"

#include "../board.h"
#include "stm32f030.h"

/* Relay n's driver (a logic-level MOSFET's gate, 10 kOhm pull-down to GND) on PB0, PB1, PB10,
 * PB11: plain GPIOs with no boot, debug or oscillator function. */
static const uint8_t RELAY_PIN[] = {0, 1, 10, 11};
#define RELAY_MAX (sizeof RELAY_PIN / sizeof RELAY_PIN[0])
#if ARM_RELAYS < 1 || ARM_RELAYS > 4
#error "ARM_RELAYS: this board has driver pins for 1 to 4 relays"
#endif

static volatile uint32_t millis = ARM_MILLIS_START;
static struct hal_config config = {
    .kind = ARM_KIND,
    .relay_count = ARM_RELAYS,
    .failsafe_ms = 5000u,
    .report_ms = 500u,
    .time_factor_milli = 1000u,  /* a real board runs on real time */
};  /* board_id and meter_addr: config_load() */

/* Runs first in reset_handler, before .data/.bss exist: registers and flash constants only. */
void hal_arm_relays_low(void)
{
    RCC_AHBENR |= RCC_AHBENR_IOPAEN | RCC_AHBENR_IOPBEN;
    for (uint32_t i = 0; i < RELAY_MAX; i++) {
        GPIO_BRR(GPIOB_BASE) = 1ul << RELAY_PIN[i];  /* output latch low before the pin drives */
        GPIO_MODER(GPIOB_BASE) = (GPIO_MODER(GPIOB_BASE) & ~(3ul << (2u * RELAY_PIN[i]))) |
                                 GPIO_MODE_OUTPUT << (2u * RELAY_PIN[i]);
    }
}

static void set_alternate(uint32_t port, uint32_t pin, uint32_t af)
{
    volatile uint32_t *afr = pin < 8u ? &GPIO_AFRL(port) : &GPIO_AFRH(port);
    *afr = (*afr & ~(0xFul << (4u * (pin & 7u)))) | af << (4u * (pin & 7u));
    GPIO_MODER(port) = (GPIO_MODER(port) & ~(3ul << (2u * pin))) | GPIO_MODE_AF << (2u * pin);
}

static void pins_init(void)
{
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN | RCC_APB2ENR_ADCEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART2EN;
    set_alternate(GPIOA_BASE, 9, 1);   /* USART1_TX */
    set_alternate(GPIOA_BASE, 10, 1);  /* USART1_RX */
    set_alternate(GPIOA_BASE, 1, 1);   /* USART2_DE (RTS) to the transceiver's DE and /RE */
    set_alternate(GPIOA_BASE, 2, 1);   /* USART2_TX */
    set_alternate(GPIOA_BASE, 3, 1);   /* USART2_RX */
    /* RX pins pulled up: an unplugged cable reads idle, not a stream of framing errors. */
    GPIO_PUPDR(GPIOA_BASE) |= GPIO_PULL_UP << (2u * 10u) | GPIO_PULL_UP << (2u * 3u);
}

/* Independent watchdog: LSI (~40 kHz, 30-50 kHz over parts) / 32, reload 1250: about 1 s
 * (0.8-1.3 s). The main loop passes at least every BOARD_TICK_MS; a flash page erase (~30 ms)
 * or a full transmit ring (TX_WAIT_MS) stays far inside it. Once started it cannot stop. */
static void watchdog_init(void)
{
    IWDG_KR = IWDG_KEY_START;  /* starts the LSI too */
    IWDG_KR = IWDG_KEY_ACCESS;
    IWDG_PR = 3u;  /* divide by 32 */
    IWDG_RLR = 1250u;
    while (IWDG_SR != 0u)
        ;  /* the prescaler and reload reach the LSI domain */
    IWDG_KR = IWDG_KEY_RELOAD;
}

void hal_watchdog_kick(void) { IWDG_KR = IWDG_KEY_RELOAD; }

void systick_irq(void) { millis = millis + 1u; }

/* The core plans its sleep (board_idle_ms) from the time it last took; hal_idle counts from
 * that instant, so a deadline is met within one tick. The HAL's own reads use arm_now(). */
static uint32_t core_now;

uint32_t hal_millis(void)
{
    core_now = millis;
    return core_now;
}

uint32_t arm_now(void) { return millis; }

/* Sleep (WFI) until a byte from the bridge or the meter is waiting, or max_ms after the core
 * last took the time. SysTick wakes the core every millisecond, so the loop re-checks;
 * interrupts are masked around the check so a byte that arrives between the check and the
 * WFI still wakes it (WFI wakes on a pending interrupt even while PRIMASK masks it). */
uint32_t hal_arm_wake_at;  /* when the current hal_idle ends at the latest (for debuggers) */

void hal_idle(uint32_t max_ms)
{
    uint32_t start = core_now;
    hal_arm_wake_at = start + max_ms;
    for (;;) {
        irq_disable();
        if (uart_rx_pending(&uart_bridge) || uart_rx_pending(&uart_meter) ||
            millis - start >= max_ms) {
            irq_enable();
            return;
        }
        wait_for_interrupt();
        irq_enable();  /* the pending interrupt runs here */
    }
}

void hal_relay_set(uint8_t n, uint8_t on)
{
    if (n >= RELAY_MAX)
        return;
    if (on)
        GPIO_BSRR(GPIOB_BASE) = 1ul << RELAY_PIN[n];
    else
        GPIO_BRR(GPIOB_BASE) = 1ul << RELAY_PIN[n];
}

const struct hal_config *hal_config(void) { return &config; }

int hal_config_save(const char *board_id, uint8_t meter_addr)
{
    if (config_store(board_id, meter_addr) != 0)
        return -1;
    config_load(&config);  /* what the page now holds, which config_store checked */
    return 0;
}

int main(void)
{
    static struct board board;
    watchdog_init();
    pins_init();
    config_load(&config);
    SYST_RVR = CPU_HZ / 1000u - 1u;  /* 1 ms */
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
    uart_init(&uart_bridge, BRIDGE_BAUD, 0, 0);
    meter_init();
    NVIC_ISER = 1ul << IRQ_USART1 | 1ul << IRQ_USART2;
    irq_enable();
    board_init(&board);  /* relays open, boot banner */
    for (;;)
        board_step(&board);
}
