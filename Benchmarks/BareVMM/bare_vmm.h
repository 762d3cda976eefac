/*
 * The smallest VMM that boots a MemGate guest ELF the way the agent does (same
 * ABI header: 64-bit mode, identity map of RAM and of its shared alias with
 * 2 MiB pages, boot info). Header-only, for the C baselines in Benchmarks/:
 * they measure what KVM itself costs, so they must do nothing the guest ABI
 * does not need.
 */
#ifndef BARE_VMM_H
#define BARE_VMM_H

#include <elf.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "memgate_abi.h"

#define BV_PTE_PRESENT 1ull
#define BV_PTE_WRITE 2ull
#define BV_PTE_LARGE 0x80ull

static inline void bv_die(const char *what) { perror(what); exit(2); }

static inline double bv_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Copies the PT_LOAD segments into the boot region; returns the entry, *end = highest byte loaded. */
static inline uint64_t bv_load_elf(uint8_t *boot, uint64_t boot_size, const char *path, uint64_t *end) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) bv_die(path);
    struct stat st;
    if (fstat(fd, &st)) bv_die("fstat");
    uint8_t *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f == MAP_FAILED) bv_die("mmap elf");
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_machine != EM_X86_64) {
        fprintf(stderr, "%s: not an x86-64 ELF\n", path);
        exit(2);
    }
    *end = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff + (uint64_t)i * eh->e_phentsize);
        if (ph->p_type != PT_LOAD || ph->p_memsz == 0) continue;
        if (ph->p_paddr + ph->p_memsz > boot_size) { fprintf(stderr, "segment outside the boot region\n"); exit(2); }
        memcpy(boot + ph->p_paddr, f + ph->p_offset, ph->p_filesz);
        if (ph->p_paddr + ph->p_memsz > *end) *end = ph->p_paddr + ph->p_memsz;
    }
    uint64_t entry = eh->e_entry;
    munmap(f, (size_t)st.st_size);
    close(fd);
    return entry;
}

/* Identity maps [va, va + size) with 2 MiB pages; tables are allocated from *next (a page index). */
static inline void bv_map(uint8_t *boot, uint64_t va, uint64_t size, unsigned *next) {
    uint64_t *pml4 = (uint64_t *)(boot + MG_PAGE_TABLES_ADDR);
    for (uint64_t off = 0; off < size; off += MG_LARGE_PAGE_SIZE) {
        uint64_t a = va + off;
        uint64_t *table = pml4;
        for (int shift = 39; shift >= 30; shift -= 9) {
            uint64_t *entry = &table[(a >> shift) & 511];
            if (!(*entry & BV_PTE_PRESENT)) *entry = (MG_PAGE_TABLES_ADDR + (uint64_t)(*next)++ * MG_PAGE_SIZE) | BV_PTE_PRESENT | BV_PTE_WRITE;
            table = (uint64_t *)(boot + (*entry & ~0xFFFull));
        }
        table[(a >> 21) & 511] = a | BV_PTE_PRESENT | BV_PTE_WRITE | BV_PTE_LARGE;
    }
}

static inline struct kvm_segment bv_segment(uint16_t selector, uint8_t type, int code) {
    struct kvm_segment s = {.base = 0, .limit = 0xFFFFFFFF, .selector = selector, .type = type,
                            .present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1};
    return s;
}

struct bv_vm {
    int kvm, vm, vcpu;
    struct kvm_run *run;
    uint8_t *boot;          /* boot region, slot 0 at GPA 0 */
    uint64_t boot_size;
    uint64_t ram_size;
    uint64_t shared_mask;   /* 0: no alias in the page tables */
};

/* Creates the VM (of `vm_type`; 1 is KVM_X86_SW_PROTECTED_VM) and its boot region (slot 0),
 * loads the guest, writes the boot info. The caller maps data RAM. A private-memory VM type
 * gets one address per page (shared_mask 0 in the boot info) and a boot slot of its own. */
static inline struct bv_vm bv_create_typed(const char *elf, uint64_t ram_size, uint64_t shared_mask, const char *cmdline,
                                           unsigned long vm_type) {
    struct bv_vm v = {.ram_size = ram_size, .shared_mask = shared_mask};
    v.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (v.kvm < 0) bv_die("/dev/kvm");
    v.vm = ioctl(v.kvm, KVM_CREATE_VM, vm_type);
    if (v.vm < 0) bv_die("KVM_CREATE_VM");
    if (ioctl(v.vm, KVM_SET_TSS_ADDR, 0xFFFBD000ul)) bv_die("KVM_SET_TSS_ADDR");

    /* Load into a scratch copy first: the boot region's size depends on the image end. */
    uint8_t *scratch = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (scratch == MAP_FAILED) bv_die("mmap");
    uint64_t image_end;
    uint64_t entry = bv_load_elf(scratch, ram_size, elf, &image_end);
    uint64_t stack_top = ((image_end + MG_PAGE_SIZE - 1) & ~(MG_PAGE_SIZE - 1)) + MG_STACK_SIZE;
    v.boot_size = (stack_top + MG_LARGE_PAGE_SIZE - 1) & ~(MG_LARGE_PAGE_SIZE - 1);
    v.boot = scratch;
    if (shared_mask == 0 && vm_type == 0) v.boot_size = ram_size; /* one slot for all of RAM */
    struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = v.boot_size,
                                                 .userspace_addr = (uint64_t)v.boot};
    if (ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &region)) bv_die("KVM_SET_USER_MEMORY_REGION(boot)");

    uint64_t *gdt = (uint64_t *)(v.boot + MG_GDT_ADDR);
    gdt[1] = 0x00AF9B000000FFFFull;
    gdt[2] = 0x00CF93000000FFFFull;
    gdt[3] = 0x0000890000000067ull | ((MG_TSS_ADDR & 0xFFFFFF) << 16) | ((MG_TSS_ADDR >> 24 & 0xFF) << 56);
    gdt[4] = MG_TSS_ADDR >> 32;
    unsigned next = 1;
    bv_map(v.boot, 0, ram_size, &next);
    if (shared_mask) bv_map(v.boot, shared_mask, ram_size, &next);

    struct mg_boot_info *bi = (struct mg_boot_info *)(v.boot + MG_BOOT_INFO_ADDR);
    bi->magic = MG_BOOT_INFO_MAGIC;
    bi->abi_version = MG_ABI_VERSION;
    bi->vcpu_count = 1;
    bi->ram_size = ram_size;
    bi->boot_region_size = shared_mask ? v.boot_size : (stack_top + MG_LARGE_PAGE_SIZE - 1) & ~(MG_LARGE_PAGE_SIZE - 1);
    bi->data_ram_start = bi->boot_region_size;
    bi->data_ram_size = ram_size - bi->boot_region_size;
    bi->shared_mask = shared_mask ? shared_mask : vm_type ? 0 : 1ull << MG_DEFAULT_SHARED_BIT;
    bi->stack_top = stack_top;
    bi->conversion_transport = MG_TRANSPORT_PORT;
    bi->data_initial_state = MG_STATE_PRIVATE;
    snprintf(bi->cmdline, sizeof bi->cmdline, "%s", cmdline);

    v.vcpu = ioctl(v.vm, KVM_CREATE_VCPU, 0);
    if (v.vcpu < 0) bv_die("KVM_CREATE_VCPU");
    int run_size = ioctl(v.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    v.run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v.vcpu, 0);
    if (v.run == MAP_FAILED) bv_die("mmap kvm_run");

    struct { struct kvm_cpuid2 head; struct kvm_cpuid_entry2 e[256]; } cpuid = {.head.nent = 256};
    if (ioctl(v.kvm, KVM_GET_SUPPORTED_CPUID, &cpuid)) bv_die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(v.vcpu, KVM_SET_CPUID2, &cpuid)) bv_die("KVM_SET_CPUID2");

    struct kvm_sregs sregs;
    if (ioctl(v.vcpu, KVM_GET_SREGS, &sregs)) bv_die("KVM_GET_SREGS");
    sregs.cs = bv_segment(MG_SELECTOR_CODE, 11, 1);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = bv_segment(MG_SELECTOR_DATA, 3, 0);
    sregs.tr = (struct kvm_segment){.base = MG_TSS_ADDR, .limit = 0x67, .selector = MG_SELECTOR_TSS, .type = 11, .present = 1};
    sregs.gdt.base = MG_GDT_ADDR;
    sregs.gdt.limit = 5 * 8 - 1;
    sregs.cr0 = 0x80050033; /* PG WP NE ET MP PE */
    sregs.cr3 = MG_PAGE_TABLES_ADDR;
    sregs.cr4 = 0x620;      /* OSXMMEXCPT OSFXSR PAE */
    sregs.efer = 0x500;     /* LMA LME */
    if (ioctl(v.vcpu, KVM_SET_SREGS, &sregs)) bv_die("KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = entry, .rsp = stack_top, .rdi = MG_BOOT_INFO_ADDR, .rflags = 2};
    if (ioctl(v.vcpu, KVM_SET_REGS, &regs)) bv_die("KVM_SET_REGS");
    /* General-purpose registers travel in kvm_run, as the agent has them (no ioctl per port call). */
    v.run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    return v;
}

static inline struct bv_vm bv_create(const char *elf, uint64_t ram_size, uint64_t shared_mask, const char *cmdline) {
    return bv_create_typed(elf, ram_size, shared_mask, cmdline, 0);
}

#endif
