/* Issues the KVM_HC_MAP_GPA_RANGE calls listed on the command line, in order,
 * and prints each result as "r<i>=<signed result>". A call is GPA:NPAGES:ATTRS
 * in hex; GPA is relative to data_ram_start unless prefixed with 'a' (absolute).
 * Example: "0:1:10 a0:1:0 1:1:0" (to private; boot region; unaligned). */
#include "selftest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    const char *s = bi->cmdline;
    for (unsigned i = 0; *s; i++) {
        while (*s == ' ') s++;
        if (!*s) break;
        int absolute = *s == 'a';
        if (absolute) s++;
        mg_u64 gpa = mg_parse_hex(&s);
        if (*s == ':') s++;
        mg_u64 npages = mg_parse_hex(&s);
        if (*s == ':') s++;
        mg_u64 attrs = mg_parse_hex(&s);
        if (!absolute) gpa += bi->data_ram_start;
        int64_t r = mg_hypercall_map_gpa_range(bi, gpa, npages, attrs);
        mg_puts("r"); mg_put_u64(i); mg_puts("="); mg_put_i64(r); mg_puts("\n");
    }
    return 0;
}
