/* Sync points shared by the test guests and the host-side test harness (Tests/VMMTests). */
#ifndef MEMGATE_SELFTEST_H
#define MEMGATE_SELFTEST_H
#include "memgate_guest.h"

/* The host checks every byte of the shared copy of [gpa, gpa+size) equals `current`, then writes `new`. */
#define SYNC_SHARED   1u  /* (gpa, size, current, new) */
/* The host checks the shared copy still holds `pattern` (a private write must not show). */
#define SYNC_PRIVATE  2u  /* (gpa, size, pattern) */
/* The host frees the private (copy 0) or shared (copy 1) backing of the range. */
#define SYNC_DISCARD  3u  /* (gpa, size, copy) */
/* The guest reached a point the host waits for. */
#define SYNC_READY    4u  /* (id) */

/* Byte patterns over page-multiple ranges, 8 bytes at a time: on nested hosts
 * every guest data access can cost microseconds, so fewer accesses matter. */
/* One string instruction each: where guest code is emulated (DESIGN §2) the
 * emulator runs the whole REP in one go instead of decoding every iteration. */
static inline void st_fill(volatile uint8_t *p, mg_u64 size, uint8_t v) {
    mg_u64 word = 0x0101010101010101ull * v, n = size / 8;
    void *d = (void *)(uintptr_t)p;
    __asm__ volatile("cld; rep stosq" : "+D"(d), "+c"(n) : "a"(word) : "memory");
}
static inline int st_check(volatile uint8_t *p, mg_u64 size, uint8_t v) {
    mg_u64 word = 0x0101010101010101ull * v, n = size / 8;
    if (n == 0) return 1;
    const void *d = (const void *)(uintptr_t)p;
    unsigned char differs;
    __asm__ volatile("cld; repe scasq; setne %0" : "=r"(differs), "+D"(d), "+c"(n) : "a"(word) : "memory", "cc");
    return !differs;
}

/* Reports a failed step and ends the VM with its number. */
static inline __attribute__((noreturn)) void st_fail(const struct mg_boot_info *bi, unsigned step, const char *what) {
    mg_puts("FAIL vcpu "); mg_put_u64(bi->vcpu_index); mg_puts(" step "); mg_put_u64(step);
    mg_puts(": "); mg_puts(what); mg_puts("\n");
    mg_exit(100 + step);
}
#define ST_EXPECT(bi, step, cond) do { if (!(cond)) st_fail(bi, step, #cond); } while (0)
#endif
