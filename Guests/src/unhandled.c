/* Does something no device answers, chosen by the command line:
 *   port  - reads I/O port 0x1234
 *   mmio  - reads the shared alias of the boot region, which is never guest memory
 *           (the boot region is not convertible and has no alias)
 * The agent must mark the VM failed with the exit described. */
#include "memgate_guest.h"

int mg_main(const struct mg_boot_info *bi) {
    if (bi->cmdline[0] == 'm') {
        volatile uint8_t *p = mg_shared_ptr(bi, bi->boot_region_start + 0x1000);
        return *p;
    }
    return mg_inb(0x1234);
}
