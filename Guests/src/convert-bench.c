/* Benchmark guest: N conversions of one 4 KiB page back and forth per vCPU (N
 * from the command line after the mode); each vCPU has its own page. The last
 * vCPU to finish exits 0.
 *   "explicit N" - KVM_HC_MAP_GPA_RANGE to shared, then to private, ...
 *   "implicit N" - touch through the shared alias, then the private address, ...
 * The pages start private. */
#include "selftest.h"

static volatile mg_u32 finished;

int mg_main(const struct mg_boot_info *bi) {
    const char *s = bi->cmdline;
    int implicit = *s == 'i';
    while (*s && *s != ' ') s++;
    mg_u64 n = 0;
    while (*s == ' ') s++;
    while (*s >= '0' && *s <= '9') n = n * 10 + (mg_u64)(*s++ - '0');
    mg_u64 gpa = bi->data_ram_start + 0x100000 + (mg_u64)bi->vcpu_index * 0x10000;
    for (mg_u64 i = 0; i < n; i++) {
        int to_private = i & 1;
        if (implicit) {
            volatile uint8_t *p = to_private ? mg_private_ptr(bi, gpa) : mg_shared_ptr(bi, gpa);
            (void)*p;
        } else if (mg_map_gpa_range(bi, gpa, 1, to_private) != 0) {
            mg_puts("conversion failed\n");
            return 1;
        }
    }
    if (__atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST) != bi->vcpu_count) mg_halt();
    mg_puts("converted "); mg_put_u64(n * bi->vcpu_count); mg_puts("\n");
    return 0;
}
