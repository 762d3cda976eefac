/* Makes N heartbeat port exits (N from the command line, default 1000) then exits 0.
 * With the command line "forever" it never exits and publishes its iteration
 * count as a u64 at the start of data RAM, so the host can watch it progress
 * (pause/resume and timeout tests). With "flood" it never exits and writes 4 KiB
 * console lines as fast as it can (tests of a slow or absent stdout reader). */
#include "memgate_guest.h"

static char line[4096];

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    if (bi->cmdline[0] == 'f' && bi->cmdline[1] == 'l') {
        for (mg_u64 i = 0; i < sizeof line - 1; i++) line[i] = (char)('a' + i % 26);
        line[sizeof line - 1] = '\n';
        for (;;) mg_write(line, sizeof line);
    }
    if (bi->cmdline[0] == 'f') {
        volatile mg_u64 *counter = (volatile mg_u64 *)mg_private_ptr(bi, bi->data_ram_start);
        for (;;) { mg_heartbeat(); *counter += 1; }
    }
    mg_u64 n = mg_cmdline_u64(bi, 1000);
    for (mg_u64 i = 0; i < n; i++) mg_heartbeat();
    mg_puts("spin-io done\n");
    return 0;
}
