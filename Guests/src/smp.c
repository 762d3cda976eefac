/* Every vCPU prints its index; the last one to finish exits 0. */
#include "memgate_guest.h"

static volatile mg_u32 finished;

int mg_main(const struct mg_boot_info *bi) {
    char line[40] = "vcpu ";
    int n = 5 + mg_fmt_u64(line + 5, bi->vcpu_index, 10);
    line[n++] = ' '; line[n++] = 'o'; line[n++] = 'f'; line[n++] = ' ';
    n += mg_fmt_u64(line + n, bi->vcpu_count, 10);
    line[n++] = '\n';
    mg_write(line, (mg_u64)n);
    if (__atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST) == bi->vcpu_count) {
        mg_puts("all vcpus done\n");
        return 0;
    }
    mg_halt();
}
