/* Benchmark guest: N conversions of one 4 KiB page back and forth (N from
 * the command line after the mode), then exits 0.
 *   "explicit N" - KVM_HC_MAP_GPA_RANGE to shared, then to private, ...
 *   "implicit N" - touch through the shared alias, then the private address, ...
 * The page starts private. */
#include "selftest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    const char *s = bi->cmdline;
    int implicit = *s == 'i';
    while (*s && *s != ' ') s++;
    mg_u64 n = 0;
    while (*s == ' ') s++;
    while (*s >= '0' && *s <= '9') n = n * 10 + (mg_u64)(*s++ - '0');
    mg_u64 gpa = bi->data_ram_start + 0x100000;
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
    mg_puts("converted "); mg_put_u64(n); mg_puts("\n");
    return 0;
}
