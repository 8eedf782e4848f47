/* The ATmega1284P HAL's own entry points (beyond hal.h), for main_avr.c. */
#ifndef GRIDBID_AVR_HAL_AVR_H
#define GRIDBID_AVR_HAL_AVR_H

#include <stdint.h>

/* Relay outputs: PC0.. (one per relay), active high into a driver with a pull-down. */
#ifndef AVR_RELAYS
#define AVR_RELAYS 1
#endif
#ifndef AVR_KIND
#define AVR_KIND BOARD_CONSUMER
#endif
#define AVR_RELAY_MASK ((uint8_t)((1u << AVR_RELAYS) - 1u))

extern uint32_t hal_avr_last_millis; /* what hal_millis() last returned */

void hal_avr_init(void); /* clock, UARTs, meter, config from EEPROM, watchdog; then sei() */

#endif
