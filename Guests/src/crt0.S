/* Entry for every vCPU: RDI = this vCPU's boot info, RSP = its stack top. */
    .section .text.start, "ax"
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp
    and $-16, %rsp
    mov %rdi, %rbx          /* keep boot info (callee-saved) */
    call mg_install_exception_handlers
    mov %rbx, %rdi
    call mg_main
    mov %eax, %eax
1:  mov $0xF4, %dx          /* MG_PORT_EXIT */
    outl %eax, %dx
    jmp 1b

/* Exception entries (exceptions.c): each pushes 0 where the CPU pushes no error code,
 * then its vector, so every frame is: vector, error, rip, cs, rflags, rsp, ss. */
    .text
    .macro entry vector, error_code
mg_exception_entry_\vector:
    .if \error_code == 0
    push $0
    .endif
    push $\vector
    jmp mg_exception_common
    .endm
    entry 0, 0
    entry 1, 0
    entry 2, 0
    entry 3, 0
    entry 4, 0
    entry 5, 0
    entry 6, 0
    entry 7, 0
    entry 8, 1
    entry 9, 0
    entry 10, 1
    entry 11, 1
    entry 12, 1
    entry 13, 1
    entry 14, 1
    entry 15, 0
    entry 16, 0
    entry 17, 1
    entry 18, 0
    entry 19, 0
    entry 20, 0
    entry 21, 1
    entry 22, 0
    entry 23, 0
    entry 24, 0
    entry 25, 0
    entry 26, 0
    entry 27, 0
    entry 28, 0
    entry 29, 1
    entry 30, 1
    entry 31, 0

mg_exception_common:
    mov %rsp, %rdi
    and $-16, %rsp
    call mg_exception       /* reports, then triple-faults: does not return */
2:  hlt
    jmp 2b

    .section .rodata
    .balign 8
    .globl mg_exception_entries
mg_exception_entries:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad mg_exception_entry_\vector
    .endr

    .section .note.GNU-stack, "", @progbits
