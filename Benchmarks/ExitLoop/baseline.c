/*
 * Baseline for `make bench-exitloop`: the bare KVM_RUN loop in C on the same
 * spin-io guest the agent runs, booted the way the agent boots it
 * (Benchmarks/BareVMM/bare_vmm.h), counting heartbeat exits.
 * Usage: exitloop-c GUEST.elf EXITS
 * Prints: c_exits_per_s=<n> exits=<n> seconds=<s>
 */
#include "bare_vmm.h"

#define RAM_SIZE (256ull << 20)

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s GUEST.elf EXITS\n", argv[0]); return 2; }
    uint64_t want = strtoull(argv[2], NULL, 10);
    struct bv_vm v = bv_create(argv[1], RAM_SIZE, 0, argv[2]);

    uint64_t exits = 0;
    double t0 = bv_now();
    for (;;) {
        if (ioctl(v.vcpu, KVM_RUN, 0) < 0) bv_die("KVM_RUN");
        if (v.run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "unexpected exit %u\n", v.run->exit_reason); return 1; }
        if (v.run->io.port == MG_PORT_HEARTBEAT) { exits++; continue; }
        if (v.run->io.port == MG_PORT_CONSOLE) continue;
        if (v.run->io.port == MG_PORT_EXIT) break;
        fprintf(stderr, "unexpected port 0x%x\n", v.run->io.port);
        return 1;
    }
    double seconds = bv_now() - t0;
    if (exits != want) { fprintf(stderr, "guest made %llu exits, expected %llu\n", (unsigned long long)exits, (unsigned long long)want); return 1; }
    printf("c_exits_per_s=%.0f exits=%llu seconds=%.3f\n", (double)exits / seconds, (unsigned long long)exits, seconds);
    return 0;
}
