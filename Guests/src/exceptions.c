/* Every guest's exception handlers. An exception no guest expects (a page fault, a
 * general protection fault, ...) is written to the console — vector, error code,
 * rip, cr2, rsp — and then the vCPU triple-faults, as it would have with no
 * handlers: the VMM's view (a crashed VM) is unchanged, and the console says why
 * (a triple fault alone leaves no trace: on AMD, KVM resets the vCPU's state). */
#include "memgate_guest.h"

struct mg_exception_frame {
    mg_u64 vector, error, rip, cs, rflags, rsp, ss;
};

struct __attribute__((packed)) mg_idt_gate {
    uint16_t offset_low, selector;
    uint8_t ist, type;
    uint16_t offset_middle;
    uint32_t offset_high, reserved;
};

struct __attribute__((packed)) mg_idt_register {
    uint16_t limit;
    mg_u64 base;
};

extern const mg_u64 mg_exception_entries[32];
static struct mg_idt_gate idt[32] __attribute__((aligned(16)));

void mg_install_exception_handlers(void);
__attribute__((noreturn)) void mg_exception(const struct mg_exception_frame *frame);

/* Every vCPU loads the same table (each writes the same bytes). */
void mg_install_exception_handlers(void) {
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (int vector = 0; vector < 32; vector++) {
        mg_u64 entry = mg_exception_entries[vector];
        idt[vector] = (struct mg_idt_gate){
            .offset_low = (uint16_t)entry, .selector = cs, .ist = 0, .type = 0x8E, /* present 64-bit interrupt gate */
            .offset_middle = (uint16_t)(entry >> 16), .offset_high = (uint32_t)(entry >> 32), .reserved = 0};
    }
    struct mg_idt_register idtr = {sizeof idt - 1, (mg_u64)(uintptr_t)idt};
    __asm__ volatile("lidt %0" ::"m"(idtr));
}

void mg_exception(const struct mg_exception_frame *frame) {
    mg_u64 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    mg_puts("exception ");
    mg_put_u64(frame->vector);
    mg_puts(" at rip ");
    mg_put_hex(frame->rip);
    mg_puts(" error ");
    mg_put_hex(frame->error);
    mg_puts(" cr2 ");
    mg_put_hex(cr2);
    mg_puts(" rsp ");
    mg_put_hex(frame->rsp);
    mg_puts("\n");
    struct mg_idt_register none = {0, 0};
    __asm__ volatile("lidt %0; ud2" ::"m"(none));
    __builtin_unreachable();
}
