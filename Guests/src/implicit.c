/* Implicit conversions through the wrong alias, both ways, on one page
 * (data_ram_start + 64 KiB, initially private):
 *   1. writes 0x11 through the private address;
 *   2. reads through the shared alias   -> implicit to_shared, prints "shared=<byte>";
 *   3. writes 0x22 through the shared alias;
 *   4. reads through the private address -> implicit to_private, prints "private=<byte>";
 * then exits 0. What the reads see depends on the policy's discard choice. */
#include "selftest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    mg_u64 gpa = bi->data_ram_start + 0x10000;
    *mg_private_ptr(bi, gpa) = 0x11;
    mg_puts("shared="); mg_put_hex(*mg_shared_ptr(bi, gpa)); mg_puts("\n");
    *mg_shared_ptr(bi, gpa) = 0x22;
    mg_puts("private="); mg_put_hex(*mg_private_ptr(bi, gpa)); mg_puts("\n");
    return 0;
}
