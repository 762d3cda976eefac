/*
 * The floor for `make bench-conversions`: the convert-bench guest run by a bare
 * C VMM that converts pages the way the agent's `protect` alias mechanism does
 * and does nothing else. Data RAM is mapped for good at its private GPA and at
 * its shared alias (two memslots); a conversion is one mprotect that opens the
 * page's new alias, one that closes the old one, and the discard of the old
 * copy. No policy, no page map, no recording.
 *
 * Usage: conversions-floor GUEST.elf explicit|implicit N [memfd|gmem-mapped|gmem-bound|attributes]
 * "attributes" is the floor of the attributes backend instead (make bench-privmem, on a
 * kernel with KVM_SW_PROTECTED_VM): a sw_protected VM, one guest_memfd memslot over data
 * RAM, and per conversion one KVM_SET_MEMORY_ATTRIBUTES and the discard of the old copy
 * (explicit conversions only: on this VM type the attribute decides what is private).
 * Prints: floor_per_s=<n> conversions=<n> seconds=<s> store=<store>
 * Exits 3 when the store cannot be used this way on this host (so the probe
 * findings in the README can be re-checked by hand).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include "bare_vmm.h"

#define RAM_SIZE (64ull << 20)
#define FALLOC_PUNCH (0x01 | 0x02) /* FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE */

struct gmem_create { uint64_t size, flags, reserved[6]; };
#define GMEM_CREATE _IOWR(KVMIO, 0xd4, struct gmem_create)
struct region2 {
    uint32_t slot, flags;
    uint64_t guest_phys_addr, memory_size, userspace_addr, guest_memfd_offset;
    uint32_t guest_memfd, pad1;
    uint64_t pad2[14];
};
#define SET_REGION2 _IOW(KVMIO, 0x49, struct region2)
#define MEM_GUEST_MEMFD (1u << 2)
static uint8_t *map(int fd, uint64_t size, int prot) {
    uint8_t *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) bv_die("mmap store");
    return p;
}

struct memory_attributes { uint64_t address, size, attributes, flags; };
#define SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct memory_attributes)
#define ATTRIBUTE_PRIVATE (1ull << 3)
#define SW_PROTECTED_VM 1ul

static void set_attributes(struct bv_vm *v, uint64_t gpa, uint64_t len, int private) {
    struct memory_attributes a = {.address = gpa, .size = len, .attributes = private ? ATTRIBUTE_PRIVATE : 0};
    if (ioctl(v->vm, SET_MEMORY_ATTRIBUTES, &a)) bv_die("KVM_SET_MEMORY_ATTRIBUTES");
}

/* The attributes backend's floor: see the header comment. */
static int attributes_floor(const char *elf, uint64_t want) {
    char cmdline[64];
    snprintf(cmdline, sizeof cmdline, "explicit %llu", (unsigned long long)want);
    struct bv_vm v = bv_create_typed(elf, RAM_SIZE, 0, cmdline, SW_PROTECTED_VM);
    uint64_t data = v.boot_size, size = RAM_SIZE - v.boot_size;
    struct gmem_create create = {.size = size};
    int gmem = ioctl(v.vm, GMEM_CREATE, &create);
    if (gmem < 0) { perror("KVM_CREATE_GUEST_MEMFD"); return 3; }
    int shared_fd = (int)syscall(SYS_memfd_create, "floor-shared", 0u);
    if (shared_fd < 0 || ftruncate(shared_fd, (off_t)size)) bv_die("memfd");
    uint8_t *shared = map(shared_fd, size, PROT_READ | PROT_WRITE);
    struct region2 r = {.slot = 1, .flags = MEM_GUEST_MEMFD, .guest_phys_addr = data, .memory_size = size,
                        .userspace_addr = (uint64_t)shared, .guest_memfd = (uint32_t)gmem};
    if (ioctl(v.vm, SET_REGION2, &r)) { perror("KVM_SET_USER_MEMORY_REGION2(guest_memfd)"); return 3; }
    set_attributes(&v, data, size, 1); /* data RAM starts private */
    uint64_t conversions = 0;
    double t0 = bv_now(), in_run = 0, in_memory = 0;
    for (;;) {
        double r0 = bv_now();
        if (ioctl(v.vcpu, KVM_RUN, 0) < 0) bv_die("KVM_RUN");
        in_run += bv_now() - r0;
        struct kvm_regs *regs = &v.run->s.regs.regs;
        if (v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == MG_PORT_HYPERCALL) {
            uint64_t gpa = regs->rbx, len = regs->rcx * MG_PAGE_SIZE;
            int to_private = (regs->rdx & (1u << 4)) != 0;
            double m0 = bv_now();
            set_attributes(&v, gpa, len, to_private);
            if (fallocate(to_private ? shared_fd : gmem, FALLOC_PUNCH, (off_t)(gpa - data), (off_t)len)) bv_die("fallocate(PUNCH_HOLE)");
            in_memory += bv_now() - m0;
            conversions++;
            regs->rax = 0;
            v.run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
        } else if (v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == MG_PORT_EXIT) {
            break;
        } else if (v.run->exit_reason != KVM_EXIT_IO) {
            fprintf(stderr, "unexpected exit %u\n", v.run->exit_reason);
            return 1;
        }
    }
    double seconds = bv_now() - t0;
    if (conversions != want) { fprintf(stderr, "%llu conversions, expected %llu\n", (unsigned long long)conversions, (unsigned long long)want); return 3; }
    printf("floor_per_s=%.0f conversions=%llu seconds=%.3f store=attributes run_pct=%.0f memory_pct=%.0f\n", (double)conversions / seconds,
           (unsigned long long)conversions, seconds, in_run / seconds * 100, in_memory / seconds * 100);
    return 0;
}

static int make_store(struct bv_vm *v, const char *kind, uint64_t size) {
    if (strcmp(kind, "memfd") == 0) {
        int fd = (int)syscall(SYS_memfd_create, "floor", 0u);
        if (fd < 0 || ftruncate(fd, (off_t)size)) bv_die("memfd");
        return fd;
    }
    struct gmem_create create = {.size = size, .flags = 1 | 2}; /* MMAP | INIT_SHARED */
    int fd = ioctl(v->vm, GMEM_CREATE, &create);
    if (fd < 0) { perror("KVM_CREATE_GUEST_MEMFD"); exit(3); }
    return fd;
}


int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s GUEST.elf explicit|implicit N [memfd|gmem-mapped|gmem-bound]\n", argv[0]); return 2; }
    uint64_t want = strtoull(argv[3], NULL, 10);
    const char *store = argc > 4 ? argv[4] : "memfd";
    if (strcmp(store, "attributes") == 0) return attributes_floor(argv[1], want);
    char cmdline[64];
    snprintf(cmdline, sizeof cmdline, "%s %llu", argv[2], (unsigned long long)want);
    uint64_t mask = 1ull << MG_DEFAULT_SHARED_BIT;
    struct bv_vm v = bv_create(argv[1], RAM_SIZE, mask, cmdline);
    uint64_t data = v.boot_size, size = RAM_SIZE - v.boot_size;

    /* Private side: the guest's view starts open, the shared alias's view closed (data RAM starts private). */
    int private_fd = make_store(&v, store, size), shared_fd = make_store(&v, "memfd", size);
    uint8_t *private_view = map(private_fd, size, PROT_READ | PROT_WRITE);
    uint8_t *shared_view = map(shared_fd, size, PROT_NONE);
    uint8_t *shared_host = map(shared_fd, size, PROT_READ | PROT_WRITE); /* the VMM's own always-open view */
    uint8_t *private_host = map(private_fd, size, PROT_READ | PROT_WRITE);
    if (strcmp(store, "gmem-bound") == 0) {
        struct region2 r = {.slot = 1, .flags = MEM_GUEST_MEMFD, .guest_phys_addr = data, .memory_size = size,
                            .userspace_addr = (uint64_t)private_view, .guest_memfd = (uint32_t)private_fd};
        if (ioctl(v.vm, SET_REGION2, &r)) { perror("KVM_SET_USER_MEMORY_REGION2(guest_memfd)"); return 3; }
    } else {
        struct kvm_userspace_memory_region r = {.slot = 1, .guest_phys_addr = data, .memory_size = size,
                                                .userspace_addr = (uint64_t)private_view};
        if (ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &r)) { perror("KVM_SET_USER_MEMORY_REGION(private)"); return 3; }
    }
    struct kvm_userspace_memory_region shared = {.slot = 2, .guest_phys_addr = data | mask, .memory_size = size,
                                                 .userspace_addr = (uint64_t)shared_view};
    if (ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &shared)) bv_die("KVM_SET_USER_MEMORY_REGION(shared)");

    uint64_t conversions = 0;
    double t0 = bv_now();
    for (;;) {
        if (ioctl(v.vcpu, KVM_RUN, 0) < 0) {
            if (errno == EFAULT) { fprintf(stderr, "KVM_RUN: EFAULT (exit reason %u): PROT_NONE does not exit as MMIO here\n", v.run->exit_reason); return 3; }
            bv_die("KVM_RUN");
        }
        uint64_t gpa, npages;
        int to_private;
        struct kvm_regs *regs = &v.run->s.regs.regs;
        if (v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == MG_PORT_HYPERCALL) {
            gpa = regs->rbx; npages = regs->rcx; to_private = (regs->rdx & (1u << 4)) != 0;
        } else if (v.run->exit_reason == KVM_EXIT_MMIO) {
            gpa = v.run->mmio.phys_addr & ~(mask | (MG_PAGE_SIZE - 1)); npages = 1;
            to_private = (v.run->mmio.phys_addr & mask) == 0;
        } else if (v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == MG_PORT_EXIT) {
            break;
        } else if (v.run->exit_reason == KVM_EXIT_IO) {
            continue; /* console */
        } else {
            fprintf(stderr, "unexpected exit %u\n", v.run->exit_reason);
            return 1;
        }
        uint64_t off = gpa - data, len = npages * MG_PAGE_SIZE;
        uint8_t *open_view = to_private ? private_view : shared_view, *close_view = to_private ? shared_view : private_view;
        if (mprotect(open_view + off, len, PROT_READ | PROT_WRITE)) bv_die("mprotect(open)");
        if (mprotect(close_view + off, len, PROT_NONE)) bv_die("mprotect(close)");
        if (fallocate(to_private ? shared_fd : private_fd, FALLOC_PUNCH, (off_t)off, (off_t)len)) bv_die("fallocate(PUNCH_HOLE)");
        conversions++;
        if (v.run->exit_reason == KVM_EXIT_MMIO) {
            uint8_t *host = (to_private ? private_host : shared_host) + off + (v.run->mmio.phys_addr & (MG_PAGE_SIZE - 1));
            if (v.run->mmio.is_write) memcpy(host, v.run->mmio.data, v.run->mmio.len);
            else memcpy(v.run->mmio.data, host, v.run->mmio.len);
        } else {
            regs->rax = 0;
            v.run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
        }
    }
    double seconds = bv_now() - t0;
    if (conversions != want) {
        fprintf(stderr, "%llu conversions, expected %llu: with store %s the closed alias did not exit\n",
                (unsigned long long)conversions, (unsigned long long)want, store);
        return 3;
    }
    printf("floor_per_s=%.0f conversions=%llu seconds=%.3f store=%s\n", (double)conversions / seconds,
           (unsigned long long)conversions, seconds, store);
    return 0;
}
