/* Port of Linux's tools/testing/selftests/kvm/x86/private_mem_conversions_test.c
 * (see shared/SELFTEST-SCENARIOS.md). Each vCPU owns a 2 MiB + 4 KiB region at
 * data_ram_start + index * 4 MiB, initially shared. Command line: "keep" when
 * the policy keeps old copies (discard off), "discard" when it frees them.
 * The last vCPU to finish exits 0; a failed step exits 100 + step. */
#include "selftest.h"

#define PAGE 0x1000ull
#define REGION (0x200000ull + PAGE)

static volatile mg_u32 finished;

static const struct { mg_u64 offset, size; } ranges[] = {
    {0, PAGE}, {0, 0x200000}, {PAGE, PAGE}, {PAGE, 0x200000}, {0x200000, PAGE},
};
#define NRANGES (sizeof ranges / sizeof ranges[0])

static volatile uint8_t *sh(const struct mg_boot_info *bi, mg_u64 gpa) { return mg_shared_ptr(bi, gpa); }
static volatile uint8_t *pv(const struct mg_boot_info *bi, mg_u64 gpa) { return mg_private_ptr(bi, gpa); }

static void explicit_conversions(const struct mg_boot_info *bi, mg_u64 base, int discard) {
    st_fill(sh(bi, base), REGION, 0xAA);
    ST_EXPECT(bi, 1, st_check(sh(bi, base), REGION, 0xAA));
    ST_EXPECT(bi, 2, mg_sync(SYNC_SHARED, base, REGION, 0xAA, 0xCC) == 0);
    ST_EXPECT(bi, 3, st_check(sh(bi, base), REGION, 0xCC));

    for (unsigned i = 0; i < NRANGES; i++) {
        mg_u64 gpa = base + ranges[i].offset, size = ranges[i].size;
        st_fill(sh(bi, gpa), size, 0x11);
        ST_EXPECT(bi, 4, mg_map_gpa_range(bi, gpa, size / PAGE, 1) == 0);
        if (size > PAGE) {
            st_fill(pv(bi, gpa), PAGE, 0x22);
        } else {
            st_fill(pv(bi, gpa), size, 0x22);
            /* The private write must not reach the host's shared copy (freed when discarding). */
            ST_EXPECT(bi, 5, mg_sync(SYNC_PRIVATE, gpa, size, discard ? 0x00 : 0x11, 0) == 0);
            ST_EXPECT(bi, 6, st_check(pv(bi, gpa), size, 0x22));
            ST_EXPECT(bi, 7, st_check(sh(bi, base), gpa - base, 0xCC));
            ST_EXPECT(bi, 8, st_check(sh(bi, gpa + size), base + REGION - gpa - size, 0xCC));
            /* Upstream's per-page loop only ever visits page 0, which stays private. */
            ST_EXPECT(bi, 9, mg_sync(SYNC_PRIVATE, gpa, PAGE, discard ? 0x00 : 0x11, 0) == 0);
        }
        ST_EXPECT(bi, 10, mg_map_gpa_range(bi, gpa, size / PAGE, 0) == 0);
        st_fill(sh(bi, gpa), size, 0x33);
        ST_EXPECT(bi, 11, mg_sync(SYNC_SHARED, gpa, size, 0x33, 0x44) == 0);
        ST_EXPECT(bi, 12, st_check(sh(bi, gpa), size, 0x44));
        st_fill(sh(bi, gpa), size, 0xCC);
    }
    ST_EXPECT(bi, 13, mg_map_gpa_range(bi, base, REGION / PAGE, 0) == 0);
}

static void punch_hole(const struct mg_boot_info *bi, mg_u64 base, int precise) {
    ST_EXPECT(bi, 20, mg_map_gpa_range(bi, base, REGION / PAGE, 1) == 0);
    for (unsigned i = 0; i < NRANGES; i++) {
        mg_u64 gpa = base + ranges[i].offset, size = ranges[i].size;
        ST_EXPECT(bi, 21, mg_sync(SYNC_DISCARD, base, REGION, 0, 0) == 0);
        if (precise) {
            st_fill(pv(bi, gpa), size, 0xCC);
            ST_EXPECT(bi, 22, st_check(pv(bi, gpa), size, 0xCC));
        } else {
            st_fill(pv(bi, base), REGION, 0xCC);
            ST_EXPECT(bi, 23, st_check(pv(bi, base), REGION, 0xCC));
        }
        ST_EXPECT(bi, 24, mg_sync(SYNC_DISCARD, gpa, size, 0, 0) == 0);
        ST_EXPECT(bi, 25, st_check(pv(bi, gpa), size, 0x00));
    }
    ST_EXPECT(bi, 26, mg_map_gpa_range(bi, base, REGION / PAGE, 0) == 0);
}

int mg_main(const struct mg_boot_info *bi) {
    int discard = bi->cmdline[0] == 'd';
    mg_u64 base = bi->data_ram_start + (mg_u64)bi->vcpu_index * 0x400000ull;
    if (base + REGION > bi->data_ram_start + bi->data_ram_size) st_fail(bi, 0, "data RAM too small for this vCPU's region");
    explicit_conversions(bi, base, discard);
    punch_hole(bi, base, 0);
    punch_hole(bi, base, 1);
    mg_puts("vcpu "); mg_put_u64(bi->vcpu_index); mg_puts(" passed\n");
    if (__atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST) == bi->vcpu_count) return 0;
    mg_halt();
}
