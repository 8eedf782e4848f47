/* The ATmega1284P board's main: the HAL's init, then the core's loop (board_step reads the
 * UART, polls the meter, runs budgets and failsafe, kicks the watchdog, sleeps till due). */
#include "../board.h"
#include "hal_avr.h"

int main(void)
{
    static struct board board; /* static: its size shows in avr-size's RAM figure */
    hal_avr_init();
    board_init(&board); /* relays open, boot banner out */
    for (;;)
        board_step(&board);
}
