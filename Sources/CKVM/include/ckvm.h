/*
 * CKVM: KVM ABI declarations and typed ioctl wrappers. No logic lives here.
 *
 * The classic structures (kvm_regs, kvm_sregs, kvm_run, kvm_cpuid2, ...) come
 * from the system's <linux/kvm.h>. Debian 12 ships 6.1 headers, which lack the
 * private-memory ABI, so those items are declared below under a CKVM_ prefix
 * (values and layouts are kernel ABI facts, see docs/KVM-ABI.md) to never
 * collide with a newer system header.
 */
#ifndef CKVM_H
#define CKVM_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

/* ---- Capabilities (KVM_CHECK_EXTENSION) ---- */
#define CKVM_CAP_NR_VCPUS              9
#define CKVM_CAP_NR_MEMSLOTS           10
#define CKVM_CAP_MAX_VCPUS             66
#define CKVM_CAP_SYNC_REGS             74
#define CKVM_CAP_IMMEDIATE_EXIT        136
#define CKVM_CAP_EXIT_HYPERCALL        201 /* bitmask of hypercalls that can exit */
#define CKVM_CAP_USER_MEMORY2          231
#define CKVM_CAP_MEMORY_FAULT_INFO     232
#define CKVM_CAP_MEMORY_ATTRIBUTES     233 /* ask the VM fd */
#define CKVM_CAP_GUEST_MEMFD           234
#define CKVM_CAP_VM_TYPES              235 /* bitmask of 1 << type */
#define CKVM_CAP_PRE_FAULT_MEMORY      236
#define CKVM_CAP_GUEST_MEMFD_FLAGS     244

/* ---- VM types (KVM_CREATE_VM argument) ---- */
#define CKVM_X86_DEFAULT_VM            0
#define CKVM_X86_SW_PROTECTED_VM       1
#define CKVM_X86_SEV_VM                2
#define CKVM_X86_SEV_ES_VM             3
#define CKVM_X86_SNP_VM                4
#define CKVM_X86_TDX_VM                5

/* ---- Exit reasons missing from 6.1 headers ---- */
#define CKVM_EXIT_NOTIFY               37
#define CKVM_EXIT_LOONGARCH_IOCSR      38
#define CKVM_EXIT_MEMORY_FAULT         39
#define CKVM_MEMORY_EXIT_FLAG_PRIVATE  (1ULL << 3)
/* Bits 0-2 of memory_fault.flags, reserved by KVM for the access type (read, write,
 * exec) and not named by the uapi headers yet: MemGate's names for them. */
#define CKVM_MEMORY_EXIT_FLAG_READ     (1ULL << 0)
#define CKVM_MEMORY_EXIT_FLAG_WRITE    (1ULL << 1)
#define CKVM_MEMORY_EXIT_FLAG_EXEC     (1ULL << 2)

/* What KVM_EXIT_MEMORY_FAULT leaves in the kvm_run exit union (6.8+, absent from 6.1 headers). */
struct ckvm_memory_fault {
    uint64_t flags;
    uint64_t gpa;
    uint64_t size;
};

/* Byte offsets inside struct kvm_run (x86-64), computed from the system header's layout and
 * pinned to the kernel ABI below. Swift reads kvm_run only through these. */
enum {
    CKVM_RUN_IMMEDIATE_EXIT    = offsetof(struct kvm_run, immediate_exit),
    CKVM_RUN_EXIT_REASON       = offsetof(struct kvm_run, exit_reason),
    CKVM_RUN_EXIT_UNION        = offsetof(struct kvm_run, io),
    CKVM_RUN_IO_DIRECTION      = offsetof(struct kvm_run, io.direction),
    CKVM_RUN_IO_SIZE           = offsetof(struct kvm_run, io.size),
    CKVM_RUN_IO_PORT           = offsetof(struct kvm_run, io.port),
    CKVM_RUN_IO_COUNT          = offsetof(struct kvm_run, io.count),
    CKVM_RUN_IO_DATA_OFFSET    = offsetof(struct kvm_run, io.data_offset),
    CKVM_RUN_MMIO_PHYS_ADDR    = offsetof(struct kvm_run, mmio.phys_addr),
    CKVM_RUN_MMIO_DATA         = offsetof(struct kvm_run, mmio.data),
    CKVM_RUN_MMIO_LEN          = offsetof(struct kvm_run, mmio.len),
    CKVM_RUN_MMIO_IS_WRITE     = offsetof(struct kvm_run, mmio.is_write),
    CKVM_RUN_HYPERCALL_NR      = offsetof(struct kvm_run, hypercall.nr),
    CKVM_RUN_HYPERCALL_ARGS    = offsetof(struct kvm_run, hypercall.args),
    CKVM_RUN_HYPERCALL_RET     = offsetof(struct kvm_run, hypercall.ret),
    CKVM_RUN_HYPERCALL_LONGMODE = offsetof(struct kvm_run, hypercall.longmode),
    CKVM_RUN_FAIL_ENTRY_REASON = offsetof(struct kvm_run, fail_entry.hardware_entry_failure_reason),
    CKVM_RUN_FAIL_ENTRY_CPU    = offsetof(struct kvm_run, fail_entry.cpu),
    CKVM_RUN_INTERNAL_SUBERROR = offsetof(struct kvm_run, internal.suberror),
    CKVM_RUN_INTERNAL_NDATA    = offsetof(struct kvm_run, internal.ndata),
    CKVM_RUN_INTERNAL_DATA     = offsetof(struct kvm_run, internal.data),
    CKVM_RUN_SYSTEM_EVENT_TYPE = offsetof(struct kvm_run, system_event.type),
    CKVM_RUN_SYSTEM_EVENT_NDATA = offsetof(struct kvm_run, system_event.ndata),
    CKVM_RUN_SYSTEM_EVENT_DATA = offsetof(struct kvm_run, system_event.data),
    CKVM_RUN_MEMORY_FAULT_FLAGS = offsetof(struct kvm_run, io) + offsetof(struct ckvm_memory_fault, flags),
    CKVM_RUN_MEMORY_FAULT_GPA  = offsetof(struct kvm_run, io) + offsetof(struct ckvm_memory_fault, gpa),
    CKVM_RUN_MEMORY_FAULT_SIZE = offsetof(struct kvm_run, io) + offsetof(struct ckvm_memory_fault, size),
    CKVM_RUN_VALID_REGS        = offsetof(struct kvm_run, kvm_valid_regs),
    CKVM_RUN_DIRTY_REGS        = offsetof(struct kvm_run, kvm_dirty_regs),
    CKVM_RUN_SYNC_REGS         = offsetof(struct kvm_run, s),
    /* Internal-error and system-event data words KVM may report. */
    CKVM_RUN_EXIT_DATA_WORDS   = 16,
};
_Static_assert(CKVM_RUN_IMMEDIATE_EXIT == 1 && CKVM_RUN_EXIT_REASON == 8, "kvm_run head");
_Static_assert(CKVM_RUN_EXIT_UNION == 32, "the exit union starts at byte 32 on x86-64");
_Static_assert(CKVM_RUN_IO_PORT == 34 && CKVM_RUN_IO_COUNT == 36 && CKVM_RUN_IO_DATA_OFFSET == 40, "kvm_run.io");
_Static_assert(CKVM_RUN_MMIO_DATA == 40 && CKVM_RUN_MMIO_LEN == 48 && CKVM_RUN_MMIO_IS_WRITE == 52, "kvm_run.mmio");
_Static_assert(CKVM_RUN_HYPERCALL_RET == 88 && CKVM_RUN_HYPERCALL_LONGMODE == 96, "kvm_run.hypercall");
_Static_assert(CKVM_RUN_INTERNAL_DATA == 40 && CKVM_RUN_SYSTEM_EVENT_DATA == 40, "kvm_run.internal and system_event");
_Static_assert(CKVM_RUN_MEMORY_FAULT_GPA == 40 && CKVM_RUN_MEMORY_FAULT_SIZE == 48, "kvm_run.memory_fault");
_Static_assert(CKVM_RUN_VALID_REGS == 288 && CKVM_RUN_DIRTY_REGS == 296 && CKVM_RUN_SYNC_REGS == 304, "kvm_run sync regs");
_Static_assert(sizeof(((struct kvm_run *)0)->internal.data) == 8 * CKVM_RUN_EXIT_DATA_WORDS, "16 data words");

/* kvm_run.kvm_valid_regs / kvm_dirty_regs bits (x86). */
#define CKVM_SYNC_X86_REGS             (1ULL << 0)
#define CKVM_SYNC_X86_SREGS            (1ULL << 1)
#define CKVM_SYNC_X86_EVENTS           (1ULL << 2)

/* ---- Hypercalls ---- */
#define CKVM_HC_MAP_GPA_RANGE          12
#define CKVM_MAP_GPA_RANGE_PAGE_SZ_MASK 0xFull
#define CKVM_MAP_GPA_RANGE_ENCRYPTED   (1ULL << 4)
/* Hypercall results as KVM's own errno values (the guest reads their negation in RAX). */
#define CKVM_EINVAL                    22
#define CKVM_EPERM                     1
#define CKVM_E2BIG                     7
#define CKVM_ENOSYS                    1000

/* ---- Memory attributes ---- */
#define CKVM_MEMORY_ATTRIBUTE_PRIVATE  (1ULL << 3)
struct ckvm_memory_attributes {
    uint64_t address;
    uint64_t size;
    uint64_t attributes;
    uint64_t flags;
};
#define CKVM_SET_MEMORY_ATTRIBUTES     0x4020AED2UL

/* ---- guest_memfd ---- */
#define CKVM_GUEST_MEMFD_FLAG_MMAP        (1ULL << 0)
#define CKVM_GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
struct ckvm_create_guest_memfd {
    uint64_t size;
    uint64_t flags;
    uint64_t reserved[6];
};
#define CKVM_CREATE_GUEST_MEMFD        0xC040AED4UL

/* ---- Memory slots with guest_memfd ---- */
#define CKVM_MEM_GUEST_MEMFD           (1U << 2)
struct ckvm_userspace_memory_region2 {
    uint32_t slot;
    uint32_t flags;
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t guest_memfd_offset;
    uint32_t guest_memfd;
    uint32_t pad1;
    uint64_t pad2[14];
};
#define CKVM_SET_USER_MEMORY_REGION2   0x40A0AE49UL

_Static_assert(sizeof(struct ckvm_userspace_memory_region2) == 160, "region2 is 160 bytes");
_Static_assert(sizeof(struct ckvm_create_guest_memfd) == 64, "create_guest_memfd is 64 bytes");
_Static_assert(sizeof(struct ckvm_memory_attributes) == 32, "memory_attributes is 32 bytes");

/* ---- Typed wrappers: ioctl(2) is variadic, which Swift cannot call. ---- */
/* Each returns the ioctl result; on -1 the caller reads errno. */

static inline int ckvm_get_api_version(int kvm) { return ioctl(kvm, KVM_GET_API_VERSION, 0); }
static inline int ckvm_check_extension(int fd, long cap) { return ioctl(fd, KVM_CHECK_EXTENSION, cap); }
static inline int ckvm_get_vcpu_mmap_size(int kvm) { return ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0); }
static inline int ckvm_create_vm(int kvm, unsigned long type) { return ioctl(kvm, KVM_CREATE_VM, type); }
static inline int ckvm_create_vcpu(int vm, unsigned long id) { return ioctl(vm, KVM_CREATE_VCPU, id); }
static inline int ckvm_set_tss_addr(int vm, unsigned long addr) { return ioctl(vm, KVM_SET_TSS_ADDR, addr); }
static inline int ckvm_enable_cap(int fd, struct kvm_enable_cap *cap) { return ioctl(fd, KVM_ENABLE_CAP, cap); }
static inline int ckvm_set_user_memory_region(int vm, const struct kvm_userspace_memory_region *r) {
    return ioctl(vm, KVM_SET_USER_MEMORY_REGION, r);
}
static inline int ckvm_set_user_memory_region2(int vm, const struct ckvm_userspace_memory_region2 *r) {
    return ioctl(vm, CKVM_SET_USER_MEMORY_REGION2, r);
}
static inline int ckvm_create_guest_memfd(int vm, struct ckvm_create_guest_memfd *g) {
    return ioctl(vm, CKVM_CREATE_GUEST_MEMFD, g);
}
static inline int ckvm_set_memory_attributes(int vm, const struct ckvm_memory_attributes *a) {
    return ioctl(vm, CKVM_SET_MEMORY_ATTRIBUTES, a);
}
static inline int ckvm_get_supported_cpuid(int kvm, struct kvm_cpuid2 *c) { return ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c); }
static inline int ckvm_set_cpuid2(int vcpu, const struct kvm_cpuid2 *c) { return ioctl(vcpu, KVM_SET_CPUID2, c); }
static inline int ckvm_get_regs(int vcpu, struct kvm_regs *r) { return ioctl(vcpu, KVM_GET_REGS, r); }
static inline int ckvm_set_regs(int vcpu, const struct kvm_regs *r) { return ioctl(vcpu, KVM_SET_REGS, r); }
static inline int ckvm_get_sregs(int vcpu, struct kvm_sregs *s) { return ioctl(vcpu, KVM_GET_SREGS, s); }
static inline int ckvm_set_sregs(int vcpu, const struct kvm_sregs *s) { return ioctl(vcpu, KVM_SET_SREGS, s); }
static inline int ckvm_run(int vcpu) { return ioctl(vcpu, KVM_RUN, 0); }

/* Size in bytes of a kvm_cpuid2 with room for n entries. */
static inline unsigned long ckvm_cpuid2_size(unsigned n) {
    return sizeof(struct kvm_cpuid2) + (unsigned long)n * sizeof(struct kvm_cpuid_entry2);
}

/* The real-time signal used to kick a vCPU thread out of KVM_RUN. */
int ckvm_kick_signal(void);
/* Installs a no-op handler for ckvm_kick_signal() (without SA_RESTART) so the
 * signal interrupts KVM_RUN with EINTR instead of killing the process. */
int ckvm_install_kick_handler(void);
/* Unblocks ckvm_kick_signal() in the calling thread (threads inherit their
 * creator's mask, which may block it). */
int ckvm_unblock_kick_signal(void);


/* immediate_exit is written by other threads to kick a vCPU: store it atomically. */
static inline void ckvm_store_immediate_exit(void *run, uint8_t value) {
    __atomic_store_n((uint8_t *)run + CKVM_RUN_IMMEDIATE_EXIT, value, __ATOMIC_SEQ_CST);
}

#endif
