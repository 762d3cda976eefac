/* Converts pages back and forth forever (or N times, N on the command line)
 * and prints "acked N" after every conversion the host acknowledged. Used to
 * check that nothing the guest saw acknowledged is missing from the record,
 * whenever the agent is killed. */
#include "selftest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    mg_u64 limit = mg_cmdline_u64(bi, 0);
    for (mg_u64 i = 0; limit == 0 || i < limit; i++) {
        mg_u64 gpa = bi->data_ram_start + (i % 64) * 0x1000;
        int to_private = (int)((i / 64) & 1);
        int64_t r = mg_map_gpa_range(bi, gpa, 1, to_private);
        if (r != 0) { mg_puts("conversion refused: "); mg_put_i64(r); mg_puts("\n"); return 1; }
        char line[32] = "acked ";
        int n = 6 + mg_fmt_u64(line + 6, i + 1, 10);
        line[n++] = '\n';
        mg_write(line, (mg_u64)n);
    }
    return 0;
}
