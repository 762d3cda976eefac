/* Prints a greeting from vCPU 0 and exits 0. */
#include "memgate_guest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    mg_puts("hello from vcpu 0\n");
    return 0;
}
