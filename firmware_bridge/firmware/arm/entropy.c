/* hal_random32 on a part without an RNG: the low bits of ADC readings of the temperature
 * sensor (thermal noise), the SysTick phase when a HELLO arrives, and a running state, mixed. */
#include "hal_arm.h"
#include "stm32f030.h"

static uint32_t state = 0x9E3779B9ul;

/* One conversion of the temperature sensor channel (short sampling: more noise in the LSB). */
static uint32_t adc_sample(void)
{
    ADC_ISR = ADC_ISR_EOC;
    ADC_CR |= ADC_CR_ADSTART;
    for (uint32_t spin = 0; !(ADC_ISR & ADC_ISR_EOC) && spin < 10000u; spin++)
        ;  /* ~15 us; the bound keeps a broken ADC from hanging the board */
    return ADC_DR;
}

static void adc_start(void)
{
    ADC_CFGR2 = ADC_CFGR2_PCLK_DIV2;  /* clocked from the bus: no HSI14 to start */
    ADC_CR = ADC_CR_ADCAL;
    for (uint32_t spin = 0; (ADC_CR & ADC_CR_ADCAL) && spin < 10000u; spin++)
        ;
    ADC_CCR = ADC_CCR_TSEN;
    ADC_CHSELR = 1ul << ADC_CHANNEL_TEMP;
    ADC_SMPR = 0u;  /* 1.5 cycles */
    /* ADEN is ignored for 4 ADC clocks after a calibration (RM0360): set it until ready. */
    for (uint32_t spin = 0; !(ADC_ISR & ADC_ISR_ADRDY) && spin < 10000u; spin++)
        if (!(ADC_CR & ADC_CR_ADEN))
            ADC_CR = ADC_CR_ADEN;
}

/* xorshift-multiply finaliser (murmur3's): spreads each input bit over the word. */
static uint32_t mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bul;
    h ^= h >> 13;
    h *= 0xC2B2AE35ul;
    return h ^ (h >> 16);
}

uint32_t hal_random32(void)
{
    static uint8_t adc_ready;
    if (!adc_ready) {
        adc_start();
        adc_ready = 1;
        for (uint32_t i = 0; i < 12u; i += 4u)  /* chips differ from the first HELLO on */
            state = mix(state ^ *(const volatile uint32_t *)(UID_BASE + i));
    }
    state = mix(state ^ SYST_CVR ^ arm_now());  /* the HELLO's arrival, to the CPU cycle */
    for (uint8_t i = 0; i < 64u; i++)  /* ~1 noisy bit a sample: 64 for 32 bits of state */
        state = mix(state ^ adc_sample() ^ (uint32_t)i << 24);
    return state;
}
