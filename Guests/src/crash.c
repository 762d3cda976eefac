/* Triple-faults on purpose: with an empty IDT every exception escalates to shutdown. */
#include "memgate_guest.h"

int mg_main(const struct mg_boot_info *bi) {
    (void)bi;
    mg_puts("crashing now\n");
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idt = {0, 0};
    __asm__ volatile("lidt %0; ud2" ::"m"(idt));
    return 1; /* not reached */
}
