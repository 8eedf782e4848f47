/* The few STM32F030x8 registers the HAL uses, with RM0360 (rev 5) addresses and bits, and the
 * Cortex-M0 core registers (ARM DDI 0432C). Debian ships no CMSIS, so these are our own. */
#ifndef GRIDBID_STM32F030_H
#define GRIDBID_STM32F030_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(addr))
#define REG16(addr) (*(volatile uint16_t *)(addr))

/* -- memory (datasheet DS9773 STM32F030C8: 64 KB flash, 8 KB SRAM, 1 KB flash pages) -------- */
#define FLASH_BASE 0x08000000ul
#define FLASH_PAGE_SIZE 1024ul
#define UID_BASE 0x1FFFF7ACul /* RM0360 31.1: 96-bit unique device id */

/* -- RCC (RM0360 7.4), base 0x40021000 ------------------------------------------------------ */
#define RCC_BASE 0x40021000ul
#define RCC_AHBENR REG32(RCC_BASE + 0x14u)
#define RCC_APB2ENR REG32(RCC_BASE + 0x18u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x1Cu)
#define RCC_CSR REG32(RCC_BASE + 0x24u)
#define RCC_AHBENR_IOPAEN (1ul << 17)
#define RCC_AHBENR_IOPBEN (1ul << 18)
#define RCC_APB2ENR_ADCEN (1ul << 9)
#define RCC_APB2ENR_USART1EN (1ul << 14)
#define RCC_APB1ENR_USART2EN (1ul << 17)
#define RCC_CSR_LSION (1ul << 0)
#define RCC_CSR_RMVF (1ul << 24)
#define RCC_CSR_IWDGRSTF (1ul << 29)

/* -- GPIO (RM0360 8.4), ports A and B ---------------------------------------------------------- */
#define GPIOA_BASE 0x48000000ul
#define GPIOB_BASE 0x48000400ul
#define GPIO_MODER(p) REG32((p) + 0x00u)
#define GPIO_OTYPER(p) REG32((p) + 0x04u)
#define GPIO_PUPDR(p) REG32((p) + 0x0Cu)
#define GPIO_BSRR(p) REG32((p) + 0x18u)
#define GPIO_BRR(p) REG32((p) + 0x28u)
#define GPIO_AFRL(p) REG32((p) + 0x20u)
#define GPIO_AFRH(p) REG32((p) + 0x24u)
#define GPIO_MODE_OUTPUT 1ul
#define GPIO_MODE_AF 2ul
#define GPIO_MODE_ANALOG 3ul
#define GPIO_PULL_UP 1ul

/* -- USART (RM0360 23.7): USART1 on APB2, USART2 on APB1 ------------------------------------ */
#define USART1_BASE 0x40013800ul
#define USART2_BASE 0x40004400ul
#define USART_CR1(u) REG32((u) + 0x00u)
#define USART_CR2(u) REG32((u) + 0x04u)
#define USART_CR3(u) REG32((u) + 0x08u)
#define USART_BRR(u) REG32((u) + 0x0Cu)
#define USART_RQR(u) REG32((u) + 0x18u)
#define USART_ISR(u) REG32((u) + 0x1Cu)
#define USART_ICR(u) REG32((u) + 0x20u)
#define USART_RDR(u) REG32((u) + 0x24u)
#define USART_TDR(u) REG32((u) + 0x28u)
#define USART_CR1_UE (1ul << 0)
#define USART_CR1_RE (1ul << 2)
#define USART_CR1_TE (1ul << 3)
#define USART_CR1_RXNEIE (1ul << 5)
#define USART_CR1_TXEIE (1ul << 7)
#define USART_CR1_DEDT(t) ((uint32_t)(t) << 16) /* driver-enable deassert time, 1/16 bits */
#define USART_CR1_DEAT(t) ((uint32_t)(t) << 21) /* driver-enable assert time, 1/16 bits */
#define USART_CR2_STOP_2 (2ul << 12)
#define USART_CR3_EIE (1ul << 0)
#define USART_CR3_DEM (1ul << 14) /* drive an RS-485 transceiver's DE from the RTS pin */
#define USART_RQR_RXFRQ (1ul << 3)
#define USART_ISR_PE (1ul << 0)
#define USART_ISR_FE (1ul << 1)
#define USART_ISR_NF (1ul << 2)
#define USART_ISR_ORE (1ul << 3)
#define USART_ISR_RXNE (1ul << 5)
#define USART_ISR_TXE (1ul << 7)
#define USART_ICR_ERRORS 0x0Ful /* PECF FECF NCF ORECF */

/* -- IWDG (RM0360 19.4), clocked by the ~40 kHz LSI ------------------------------------------ */
#define IWDG_BASE 0x40003000ul
#define IWDG_KR REG32(IWDG_BASE + 0x00u)
#define IWDG_PR REG32(IWDG_BASE + 0x04u)
#define IWDG_RLR REG32(IWDG_BASE + 0x08u)
#define IWDG_SR REG32(IWDG_BASE + 0x0Cu)
#define IWDG_KEY_RELOAD 0xAAAAul
#define IWDG_KEY_ACCESS 0x5555ul
#define IWDG_KEY_START 0xCCCCul

/* -- flash interface (RM0360 3.5) ------------------------------------------------------------ */
#define FLASH_R_BASE 0x40022000ul
#define FLASH_KEYR REG32(FLASH_R_BASE + 0x04u)
#define FLASH_SR REG32(FLASH_R_BASE + 0x0Cu)
#define FLASH_CR REG32(FLASH_R_BASE + 0x10u)
#define FLASH_AR REG32(FLASH_R_BASE + 0x14u)
#define FLASH_KEY1 0x45670123ul
#define FLASH_KEY2 0xCDEF89ABul
#define FLASH_SR_BSY (1ul << 0)
#define FLASH_SR_PGERR (1ul << 2)
#define FLASH_SR_WRPRTERR (1ul << 4)
#define FLASH_SR_EOP (1ul << 5)
#define FLASH_CR_PG (1ul << 0)
#define FLASH_CR_PER (1ul << 1)
#define FLASH_CR_STRT (1ul << 6)
#define FLASH_CR_LOCK (1ul << 7)

/* -- ADC (RM0360 12.11): its noise seeds session ids ------------------------------------------ */
#define ADC_BASE 0x40012400ul
#define ADC_ISR REG32(ADC_BASE + 0x00u)
#define ADC_CR REG32(ADC_BASE + 0x08u)
#define ADC_CFGR2 REG32(ADC_BASE + 0x10u)
#define ADC_SMPR REG32(ADC_BASE + 0x14u)
#define ADC_CHSELR REG32(ADC_BASE + 0x28u)
#define ADC_DR REG32(ADC_BASE + 0x40u)
#define ADC_CCR REG32(ADC_BASE + 0x308u)
#define ADC_ISR_ADRDY (1ul << 0)
#define ADC_ISR_EOC (1ul << 2)
#define ADC_CR_ADEN (1ul << 0)
#define ADC_CR_ADSTART (1ul << 2)
#define ADC_CR_ADCAL (1ul << 31)
#define ADC_CFGR2_PCLK_DIV2 (1ul << 30)
#define ADC_CCR_TSEN (1ul << 23)
#define ADC_CHANNEL_TEMP 16u

/* -- Cortex-M0 core ------------------------------------------------------------------------------ */
#define SYST_CSR REG32(0xE000E010ul)
#define SYST_RVR REG32(0xE000E014ul)
#define SYST_CVR REG32(0xE000E018ul)
#define SYST_CSR_ENABLE (1ul << 0)
#define SYST_CSR_TICKINT (1ul << 1)
#define SYST_CSR_CLKSOURCE (1ul << 2) /* the processor clock */
#define NVIC_ISER REG32(0xE000E100ul)
#define SCB_AIRCR REG32(0xE000ED0Cul)
#define SCB_AIRCR_SYSRESET 0x05FA0004ul /* VECTKEY | SYSRESETREQ */

/* Interrupt numbers of the F030x8 vector table (RM0360 table 29). */
#define IRQ_USART1 27u
#define IRQ_USART2 28u
#define IRQ_COUNT 32u

/* The HSI at reset: 8 MHz, no PLL (fast enough for 115200 baud and the core). */
#define CPU_HZ 8000000ul

static inline void irq_disable(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void wait_for_interrupt(void) { __asm__ volatile("wfi" ::: "memory"); }

#endif
