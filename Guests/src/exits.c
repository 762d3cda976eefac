/* In the spirit of Linux's private_mem_kvm_exits_test.c: reads one 8-byte
 * value at the first page of data RAM (private) in a loop, after telling the
 * host it is about to (SYNC_READY). The host removes the page's backing; the
 * next read must fault with the PRIVATE flag, that exact gpa and size 4096. */
#include "selftest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    volatile mg_u64 *p = (volatile mg_u64 *)mg_private_ptr(bi, bi->data_ram_start);
    mg_sync(SYNC_READY, bi->data_ram_start, 0, 0, 0);
    mg_u64 sum = 0;
    for (;;) sum += *p;
}
