/* Prints every boot-info field as key=value lines, then exits with vcpu_count.
 * The host-side test compares them with what the agent wrote. */
#include "memgate_guest.h"

static void field(const char *k, mg_u64 v) { mg_puts(k); mg_puts("="); mg_put_hex(v); mg_puts("\n"); }

int mg_main(const struct mg_boot_info *bi) {
    if (bi->vcpu_index != 0) mg_halt();
    field("magic", bi->magic);
    field("abi_version", bi->abi_version);
    field("vcpu_index", bi->vcpu_index);
    field("vcpu_count", bi->vcpu_count);
    field("ram_size", bi->ram_size);
    field("boot_region_start", bi->boot_region_start);
    field("boot_region_size", bi->boot_region_size);
    field("data_ram_start", bi->data_ram_start);
    field("data_ram_size", bi->data_ram_size);
    field("shared_mask", bi->shared_mask);
    field("stack_top", bi->stack_top);
    field("conversion_transport", bi->conversion_transport);
    field("data_initial_state", bi->data_initial_state);
    mg_puts("cmdline="); mg_puts(bi->cmdline); mg_puts("\n");
    /* The last data RAM byte is reachable through the identity map. */
    volatile uint8_t *last = mg_private_ptr(bi, bi->data_ram_start + bi->data_ram_size - 1);
    *last = 0x5a;
    field("last_byte", *last);
    return (int)bi->vcpu_count;
}
