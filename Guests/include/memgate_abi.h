/*
 * MemGate guest boot ABI (version 1).
 *
 * The single source of truth shared by the agent (imported into Swift as the
 * CGuestABI module), the guest SDK and the C benchmark baseline. Every value
 * here is a contract between host and guest: change it only with the ABI
 * version.
 *
 * Guest-physical layout (identity mapped at boot, 2 MiB pages):
 *   0x00001000  GDT (null, code64, data, TSS descriptor)
 *   0x00001800  TSS (unused by guests; VMX needs a valid TR)
 *   0x00002000  boot-info array, MG_BOOT_INFO_STRIDE bytes per vCPU
 *   0x00020000  page tables (PML4, PDPTs, PDs) up to MG_IMAGE_BASE
 *   0x00100000  guest image (PT_LOAD segments), then one stack per vCPU
 *   boot region end (2 MiB aligned) .. RAM size: data RAM
 * The same RAM is also mapped in the guest page tables at the shared alias
 * (gpa | shared_mask); what backs the alias is the memory backend's business.
 */
#ifndef MEMGATE_ABI_H
#define MEMGATE_ABI_H

#include <stdint.h>

#define MG_ABI_VERSION          1u
#define MG_BOOT_INFO_MAGIC      0x4942474du /* "MGBI" little endian */

#define MG_PAGE_SIZE            0x1000ull
#define MG_LARGE_PAGE_SIZE      0x200000ull
#define MG_GDT_ADDR             0x1000ull
#define MG_TSS_ADDR             0x1800ull
#define MG_BOOT_INFO_ADDR       0x2000ull
#define MG_BOOT_INFO_STRIDE     0x400ull
#define MG_MAX_VCPUS            64u
#define MG_PAGE_TABLES_ADDR     0x20000ull
#define MG_IMAGE_BASE           0x100000ull
#define MG_STACK_SIZE           0x10000ull
#define MG_MAX_RAM_SIZE         (64ull << 30)
#define MG_DEFAULT_SHARED_BIT   40u

/* GDT selectors. */
#define MG_SELECTOR_CODE        0x08u
#define MG_SELECTOR_DATA        0x10u
#define MG_SELECTOR_TSS         0x18u

/* I/O ports the agent handles. */
#define MG_PORT_CONSOLE         0x3F8u /* COM1 THR: bytes written are console output */
#define MG_PORT_CONSOLE_LSR     0x3FDu /* COM1 LSR: reads 0x60 (transmitter empty)     */
#define MG_PORT_HEARTBEAT       0x80u  /* writes are acknowledged and ignored          */
#define MG_PORT_SYNC            0xEAu  /* 32-bit write: a named sync point (host acts) */
#define MG_PORT_HYPERCALL       0xEBu  /* paravirtual KVM_HC_MAP_GPA_RANGE transport   */
#define MG_PORT_EXIT            0xF4u  /* 32-bit write: the VM ends with this status   */

/* How the guest must issue explicit conversions (boot info conversion_transport). */
#define MG_TRANSPORT_PORT       0u /* OUT MG_PORT_HYPERCALL, AL with the hypercall registers */
#define MG_TRANSPORT_VMCALL     1u /* VMCALL: KVM_EXIT_HYPERCALL reaches the agent          */

/* Initial state of data RAM (boot info data_initial_state). */
#define MG_STATE_PRIVATE        0u
#define MG_STATE_SHARED         1u

#define MG_CMDLINE_SIZE         256u

struct mg_boot_info {
    uint32_t magic;                /* MG_BOOT_INFO_MAGIC */
    uint32_t abi_version;          /* MG_ABI_VERSION */
    uint32_t vcpu_index;           /* 0-based index of the vCPU this copy belongs to */
    uint32_t vcpu_count;
    uint64_t ram_size;             /* bytes of guest RAM starting at GPA 0 */
    uint64_t boot_region_start;    /* always 0 */
    uint64_t boot_region_size;     /* never convertible, always accessible at its GPA */
    uint64_t data_ram_start;       /* where conversions happen */
    uint64_t data_ram_size;
    uint64_t shared_mask;          /* alias of gpa is gpa | shared_mask (1 << shared bit) */
    uint64_t stack_top;            /* this vCPU's initial RSP */
    uint32_t conversion_transport; /* MG_TRANSPORT_* */
    uint32_t data_initial_state;   /* MG_STATE_* */
    uint64_t reserved[6];
    char     cmdline[MG_CMDLINE_SIZE]; /* NUL-terminated argument string from the host */
};

#endif
