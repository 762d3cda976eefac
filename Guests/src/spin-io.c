/* Makes N heartbeat port exits (N from the command line, default 1000) then exits 0.
 * A command line of "forever" spins without exiting (pause/resume and timeout tests). */
#include "memgate_guest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    if (bi->cmdline[0] == 'f') for (;;) mg_heartbeat();
    mg_u64 n = mg_cmdline_u64(bi, 1000);
    for (mg_u64 i = 0; i < n; i++) mg_heartbeat();
    mg_puts("spin-io done\n");
    return 0;
}
