/* Entry for every vCPU: RDI = this vCPU's boot info, RSP = its stack top. */
    .section .text.start, "ax"
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp
    and $-16, %rsp
    mov %rdi, %rbx          /* keep boot info (callee-saved) */
    call mg_main
    mov %eax, %eax
1:  mov $0xF4, %dx          /* MG_PORT_EXIT */
    outl %eax, %dx
    jmp 1b

    .section .note.GNU-stack, "", @progbits
