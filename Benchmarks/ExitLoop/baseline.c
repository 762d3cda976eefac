/*
 * Baseline for `make bench-exitloop`: the bare KVM_RUN loop in C on the same
 * spin-io guest the agent runs. It boots the guest the way the agent does (same
 * ABI header: 64-bit mode, identity map, boot info) and counts heartbeat exits.
 * Usage: exitloop-c GUEST.elf EXITS
 * Prints: c_exits_per_s=<n> exits=<n> seconds=<s>
 */
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

#define RAM_SIZE (256ull << 20)
#define PTE_PRESENT 1ull
#define PTE_WRITE 2ull
#define PTE_LARGE 0x80ull

static void die(const char *what) { perror(what); exit(2); }

/* Copies the PT_LOAD segments into RAM; returns the entry, *end = highest byte loaded. */
static uint64_t load_elf(uint8_t *ram, const char *path, uint64_t *end) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st)) die("fstat");
    uint8_t *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f == MAP_FAILED) die("mmap elf");
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_machine != EM_X86_64) {
        fprintf(stderr, "%s: not an x86-64 ELF\n", path);
        exit(2);
    }
    *end = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff + (uint64_t)i * eh->e_phentsize);
        if (ph->p_type != PT_LOAD || ph->p_memsz == 0) continue;
        if (ph->p_paddr + ph->p_memsz > RAM_SIZE) { fprintf(stderr, "segment outside RAM\n"); exit(2); }
        memcpy(ram + ph->p_paddr, f + ph->p_offset, ph->p_filesz);
        if (ph->p_paddr + ph->p_memsz > *end) *end = ph->p_paddr + ph->p_memsz;
    }
    uint64_t entry = eh->e_entry;
    munmap(f, (size_t)st.st_size);
    close(fd);
    return entry;
}

static struct kvm_segment segment(uint16_t selector, uint8_t type, int code) {
    struct kvm_segment s = {.base = 0, .limit = 0xFFFFFFFF, .selector = selector, .type = type,
                            .present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1};
    return s;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s GUEST.elf EXITS\n", argv[0]); return 2; }
    uint64_t want = strtoull(argv[2], NULL, 10);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED) die("mmap ram");
    struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE,
                                                 .userspace_addr = (uint64_t)ram};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region)) die("KVM_SET_USER_MEMORY_REGION");

    uint64_t image_end;
    uint64_t entry = load_elf(ram, argv[1], &image_end);
    uint64_t stack_top = ((image_end + MG_PAGE_SIZE - 1) & ~(MG_PAGE_SIZE - 1)) + MG_STACK_SIZE;

    /* GDT: null, code64, data, 64-bit TSS (two slots). */
    uint64_t *gdt = (uint64_t *)(ram + MG_GDT_ADDR);
    gdt[1] = 0x00AF9B000000FFFFull;
    gdt[2] = 0x00CF93000000FFFFull;
    gdt[3] = 0x0000890000000067ull | ((MG_TSS_ADDR & 0xFFFFFF) << 16) | ((MG_TSS_ADDR >> 24 & 0xFF) << 56);
    gdt[4] = MG_TSS_ADDR >> 32;

    /* Identity map of RAM with 2 MiB pages: PML4 -> PDPT -> one PD. */
    uint64_t *pml4 = (uint64_t *)(ram + MG_PAGE_TABLES_ADDR);
    uint64_t *pdpt = (uint64_t *)(ram + MG_PAGE_TABLES_ADDR + 0x1000);
    uint64_t *pd = (uint64_t *)(ram + MG_PAGE_TABLES_ADDR + 0x2000);
    pml4[0] = (MG_PAGE_TABLES_ADDR + 0x1000) | PTE_PRESENT | PTE_WRITE;
    pdpt[0] = (MG_PAGE_TABLES_ADDR + 0x2000) | PTE_PRESENT | PTE_WRITE;
    for (uint64_t i = 0; i < RAM_SIZE / MG_LARGE_PAGE_SIZE; i++) pd[i] = i * MG_LARGE_PAGE_SIZE | PTE_PRESENT | PTE_WRITE | PTE_LARGE;

    struct mg_boot_info *bi = (struct mg_boot_info *)(ram + MG_BOOT_INFO_ADDR);
    bi->magic = MG_BOOT_INFO_MAGIC;
    bi->abi_version = MG_ABI_VERSION;
    bi->vcpu_count = 1;
    bi->ram_size = RAM_SIZE;
    bi->boot_region_size = (stack_top + MG_LARGE_PAGE_SIZE - 1) & ~(MG_LARGE_PAGE_SIZE - 1);
    bi->data_ram_start = bi->boot_region_size;
    bi->data_ram_size = RAM_SIZE - bi->boot_region_size;
    bi->shared_mask = 1ull << MG_DEFAULT_SHARED_BIT;
    bi->stack_top = stack_top;
    snprintf(bi->cmdline, sizeof bi->cmdline, "%llu", (unsigned long long)want);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    struct { struct kvm_cpuid2 head; struct kvm_cpuid_entry2 e[256]; } cpuid = {.head.nent = 256};
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid)) die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu, KVM_SET_CPUID2, &cpuid)) die("KVM_SET_CPUID2");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs)) die("KVM_GET_SREGS");
    sregs.cs = segment(MG_SELECTOR_CODE, 11, 1);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = segment(MG_SELECTOR_DATA, 3, 0);
    sregs.tr = (struct kvm_segment){.base = MG_TSS_ADDR, .limit = 0x67, .selector = MG_SELECTOR_TSS, .type = 11, .present = 1};
    sregs.gdt.base = MG_GDT_ADDR;
    sregs.gdt.limit = 5 * 8 - 1;
    sregs.cr0 = 0x80050033; /* PG WP NE ET MP PE */
    sregs.cr3 = MG_PAGE_TABLES_ADDR;
    sregs.cr4 = 0x620;      /* OSXMMEXCPT OSFXSR PAE */
    sregs.efer = 0x500;     /* LMA LME */
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs)) die("KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = entry, .rsp = stack_top, .rdi = MG_BOOT_INFO_ADDR, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs)) die("KVM_SET_REGS");

    uint64_t exits = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
        if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "unexpected exit %u\n", run->exit_reason); return 1; }
        if (run->io.port == MG_PORT_HEARTBEAT) { exits++; continue; }
        if (run->io.port == MG_PORT_CONSOLE) continue;
        if (run->io.port == MG_PORT_EXIT) break;
        fprintf(stderr, "unexpected port 0x%x\n", run->io.port);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (exits != want) { fprintf(stderr, "guest made %llu exits, expected %llu\n", (unsigned long long)exits, (unsigned long long)want); return 1; }
    printf("c_exits_per_s=%.0f exits=%llu seconds=%.3f\n", (double)exits / seconds, (unsigned long long)exits, seconds);
    return 0;
}
