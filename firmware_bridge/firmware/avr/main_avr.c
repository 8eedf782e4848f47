/* The ATmega1284P board's main loop: take the bridge's bytes, run the core, sleep a tick. */
#include <avr/io.h>

#include "../board.h"
#include "hal_avr.h"

/* The longest sleep between two passes: the failsafe trips within this of its 5 s, and a
 * budget overshoots by at most this much of the meter's (250 ms) lag. */
#define AVR_TICK_MS 2u

void hal_watchdog_kick(void);
size_t hal_uart_read(char *data, size_t max);
void hal_idle(uint32_t max_ms);

int main(void)
{
    static struct board board; /* static: its size shows in avr-size's RAM figure */
    char buf[32];
    hal_avr_init();
    board_init(&board);
    for (;;) {
        size_t n;
        hal_watchdog_kick();
        while ((n = hal_uart_read(buf, sizeof buf)) > 0)
            board_rx(&board, buf, n);
        board_poll(&board);
        hal_idle(AVR_TICK_MS);
    }
}
