/* Triple-faults on purpose. Command line:
 *   (none)  - with an empty IDT, so the exception escalates to shutdown at once;
 *   "ud"    - an invalid opcode (#UD) through the SDK's handlers, which report it first;
 *   "pf"    - a load from an unmapped address (#PF), reported with its cr2. */
#include "memgate_guest.h"

int mg_main(const struct mg_boot_info *bi) {
    mg_puts("crashing now\n");
    const char *mode = bi->cmdline;
    if (mode[0] == 'u' && mode[1] == 'd') __asm__ volatile("ud2");
    if (mode[0] == 'p' && mode[1] == 'f') (void)*(volatile mg_u64 *)(uintptr_t)0x8000000000ull; /* 512 GiB: never mapped */
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idt = {0, 0};
    __asm__ volatile("lidt %0; ud2" ::"m"(idt));
    return 1; /* not reached */
}
