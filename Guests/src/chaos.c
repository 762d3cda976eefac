/* A hostile guest for `make chaos`: from the seed on its command line it does,
 * for ever, a random mix of
 *   - console output of random bytes (escape sequences included), as fast as it can;
 *   - KVM_HC_MAP_GPA_RANGE over the PV port with random registers (often valid-looking);
 *   - loads and stores on random data-RAM pages through either alias;
 *   - port I/O on the handled ports, and about once in 10,000 actions on any port;
 *   - about once in 10,000 actions, a load from anywhere in RAM or its alias (boot region included).
 * Most of it the agent answers; some of it ends this VM (an unhandled port, MMIO
 * with no device, a denied fault, a triple fault). None of it may hurt the agent
 * or another VM. */
#include "memgate_guest.h"

static mg_u64 state;

static mg_u64 next(void) {  /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ull;
}

static mg_u64 data_page(const struct mg_boot_info *bi) {
    return bi->data_ram_start + (next() % (bi->data_ram_size / 4096)) * 4096;
}

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    state = mg_cmdline_u64(bi, 1) * 0x9E3779B97F4A7C15ull | 1;
    char bytes[64];
    for (;;) {
        mg_u64 action = next() % 100000;
        if (action < 45000) {
            mg_u64 n = 1 + next() % sizeof bytes;
            for (mg_u64 i = 0; i < n; i++) bytes[i] = (char)next();
            mg_write(bytes, n);
        } else if (action < 70000) {
            mg_u64 rax = (next() & 3) ? 12 : next();
            mg_u64 gpa = (next() & 1) ? data_page(bi) : next();
            mg_u64 npages = (next() & 1) ? 1 + next() % 16 : next();
            mg_u64 attrs = (next() & 1) ? (next() & 1) << 4 : next();
            __asm__ volatile("outb %%al, $0xEB" : "+a"(rax) : "b"(gpa), "c"(npages), "d"(attrs) : "memory");
        } else if (action < 90000) {
            mg_u64 gpa = data_page(bi) + (next() % 512) * 8;
            volatile mg_u64 *p = (volatile mg_u64 *)(uintptr_t)((next() & 1) ? gpa : gpa | bi->shared_mask);
            if (next() & 1) *p = next(); else (void)*p;
        } else if (action < 99980) {
            switch (next() % 3) {
            case 0: mg_heartbeat(); break;
            case 1: (void)mg_inb(MG_PORT_CONSOLE_LSR); break;
            default: (void)mg_sync((mg_u32)next(), next(), next(), next(), next()); break;
            }
        } else if (action < 99990) {
            mg_u64 port = next() & 0xFFFF;
            __asm__ volatile("outb %%al, %%dx" : : "a"((uint8_t)next()), "d"((uint16_t)port));
        } else {
            mg_u64 address = (next() % bi->ram_size) & ~7ull;
            if (next() & 1) address |= bi->shared_mask;
            (void)*(volatile mg_u64 *)(uintptr_t)address;
        }
    }
}
