/*
 * MemGate guest SDK. Freestanding (no libc): include this, define
 *     int mg_main(const struct mg_boot_info *bi)
 * and link with crt0.S and memgate.ld. Every vCPU enters mg_main with its own
 * boot info; returning ends the VM with the returned status.
 */
#ifndef MEMGATE_GUEST_H
#define MEMGATE_GUEST_H

#include "memgate_abi.h"

typedef uint64_t mg_u64;
typedef uint32_t mg_u32;

int mg_main(const struct mg_boot_info *bi);

/* ---- port I/O ---- */
static inline void mg_outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void mg_outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t mg_inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* ---- console (COM1): one exit per string, via REP OUTSB ---- */
static inline mg_u64 mg_strlen(const char *s) { mg_u64 n = 0; while (s[n]) n++; return n; }
static inline void mg_write(const char *s, mg_u64 n) {
    __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"((uint16_t)MG_PORT_CONSOLE) : "memory");
}
static inline void mg_puts(const char *s) { mg_write(s, mg_strlen(s)); }

/* Formats v in base 10 (or 16) into buf, returns the number of characters. */
static inline int mg_fmt_u64(char *buf, mg_u64 v, unsigned base) {
    char tmp[24]; int n = 0, i = 0;
    do { unsigned d = (unsigned)(v % base); tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10); v /= base; } while (v);
    while (n) buf[i++] = tmp[--n];
    buf[i] = 0;
    return i;
}
static inline void mg_put_u64(mg_u64 v) { char b[24]; mg_write(b, (mg_u64)mg_fmt_u64(b, v, 10)); }
static inline void mg_put_hex(mg_u64 v) { char b[24]; mg_puts("0x"); mg_write(b, (mg_u64)mg_fmt_u64(b, v, 16)); }

/* ---- ending the VM ---- */
static inline __attribute__((noreturn)) void mg_exit(uint32_t status) {
    for (;;) mg_outl(MG_PORT_EXIT, status);
}
/* Stops this vCPU for good (no interrupts are ever delivered); the VM runs on. */
static inline __attribute__((noreturn)) void mg_halt(void) {
    for (;;) __asm__ volatile("cli; hlt");
}
static inline void mg_heartbeat(void) { mg_outb(MG_PORT_HEARTBEAT, 0); }

/* ---- memory conversions (KVM_HC_MAP_GPA_RANGE) ---- */
_Static_assert(MG_PORT_HYPERCALL == 0xEB && MG_PORT_SYNC == 0xEA, "ports are spelled out in the asm below");
#define MG_HC_MAP_GPA_RANGE      12ull
#define MG_MAP_GPA_ENCRYPTED     (1ull << 4) /* to private; clear = to shared */
#define MG_KVM_EINVAL            (-22)
#define MG_KVM_EPERM             (-1)
#define MG_KVM_E2BIG             (-7)
#define MG_KVM_ENOSYS            (-1000)

/* The raw hypercall: RAX=12, RBX=gpa, RCX=npages, RDX=attrs; returns RAX (0 or -KVM_E*).
 * Uses VMCALL where the host said hypercall exits work, else `OUT 0xEB, AL` (same ABI). */
static inline int64_t mg_hypercall_map_gpa_range(const struct mg_boot_info *bi, mg_u64 gpa, mg_u64 npages, mg_u64 attrs) {
    mg_u64 rax = MG_HC_MAP_GPA_RANGE;
    if (bi->conversion_transport == MG_TRANSPORT_VMCALL)
        __asm__ volatile("vmcall" : "+a"(rax) : "b"(gpa), "c"(npages), "d"(attrs) : "memory");
    else
        __asm__ volatile("outb %%al, $0xEB" : "+a"(rax) : "b"(gpa), "c"(npages), "d"(attrs) : "memory");
    return (int64_t)rax;
}

/* Converts npages 4 KiB pages at gpa to private (to_private != 0) or shared. */
static inline int64_t mg_map_gpa_range(const struct mg_boot_info *bi, mg_u64 gpa, mg_u64 npages, int to_private) {
    return mg_hypercall_map_gpa_range(bi, gpa, npages, to_private ? MG_MAP_GPA_ENCRYPTED : 0);
}

/* ---- sync points: the vCPU waits while a host-side harness acts ---- */
/* Arguments travel in RBX, RCX, RDX, RSI; the host's answer comes back (0 = ok by convention). */
static inline mg_u64 mg_sync(mg_u32 point, mg_u64 a0, mg_u64 a1, mg_u64 a2, mg_u64 a3) {
    mg_u64 rax = point;
    __asm__ volatile("outl %%eax, $0xEA" : "+a"(rax) : "b"(a0), "c"(a1), "d"(a2), "S"(a3) : "memory");
    return rax;
}

/* ---- command line from the host (`memgate-agent run --arg`) ---- */
/* Returns the decimal number at the start of the command line, or fallback. */
static inline mg_u64 mg_cmdline_u64(const struct mg_boot_info *bi, mg_u64 fallback) {
    const char *s = bi->cmdline; mg_u64 v = 0; int any = 0;
    while (*s == ' ') s++;
    while (*s >= '0' && *s <= '9') { v = v * 10 + (mg_u64)(*s++ - '0'); any = 1; }
    return any ? v : fallback;
}

/* Parses a hex number (optional 0x) at *s, advancing *s. */
static inline mg_u64 mg_parse_hex(const char **s) {
    const char *p = *s; mg_u64 v = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) p += 2;
    for (;; p++) {
        char c = *p; unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else break;
        v = v * 16 + d;
    }
    *s = p;
    return v;
}

static inline void mg_put_i64(int64_t v) {
    if (v < 0) { mg_puts("-"); mg_put_u64((mg_u64)(-(v + 1)) + 1); } else mg_put_u64((mg_u64)v);
}

/* ---- addresses: a GPA seen through its private address or shared alias ---- */
static inline volatile uint8_t *mg_private_ptr(const struct mg_boot_info *bi, mg_u64 gpa) {
    (void)bi; return (volatile uint8_t *)(uintptr_t)gpa;
}
static inline volatile uint8_t *mg_shared_ptr(const struct mg_boot_info *bi, mg_u64 gpa) {
    return (volatile uint8_t *)(uintptr_t)(gpa | bi->shared_mask);
}

#endif
