/* Conversions on many vCPUs (issue: conversions stay correct on many vCPUs).
 * Command line: MODE N discard|keep
 *   "windows": every vCPU converts its own 64 KiB window of data RAM N times to
 *     shared and back (one explicit request each way), and after every
 *     conversion checks, then rewrites, the first word of each page of the
 *     window through the alias matching its new state.
 *   "bystanders": vCPU 0 does the same with its window while the other vCPUs
 *     spin on a flag in an unconverted page of data RAM, adding one to a shared
 *     counter (also in data RAM) with LOCK CMPXCHG each time round; when vCPU 0
 *     is done it raises the flag, and the counter must equal the sum of their
 *     own counts.
 *   "race": vCPU 0 converts its window N times to shared and back (no data
 *     checks: vCPU 1 writes it meanwhile), while vCPU 1 reads and writes every
 *     page of that window through the private address until vCPU 0 is done.
 *     For the attributes backend, where a page has one address (shared_mask 0):
 *     an access racing a conversion of its page is what KVM reports as
 *     KVM_EXIT_MEMORY_FAULT on a sw_protected VM.
 * The VM exits 0 when every check passed, 1 + vCPU index otherwise. */
#include "selftest.h"

#define PAGE 0x1000ull
#define WINDOW_PAGES 16ull
#define WINDOW (WINDOW_PAGES * PAGE)

static volatile mg_u32 finished;

/* Shared state in data RAM's first pages (never converted): flag, counter, per-vCPU counts. */
static volatile mg_u64 *slot(const struct mg_boot_info *bi, mg_u64 page, mg_u64 index) {
    return (volatile mg_u64 *)(uintptr_t)(bi->data_ram_start + page * PAGE) + index;
}

static int fail(const struct mg_boot_info *bi, const char *what, mg_u64 round) {
    char line[96] = "vcpu ";
    int n = 5 + mg_fmt_u64(line + 5, bi->vcpu_index, 10);
    line[n++] = ' ';
    for (const char *w = what; *w; w++) line[n++] = *w;
    line[n++] = ' ';
    n += mg_fmt_u64(line + n, round, 10);
    line[n++] = '\n';
    mg_write(line, (mg_u64)n);
    return 1 + (int)bi->vcpu_index;
}

/* Converts the window N times both ways with a data check after each conversion; 0 or a failure status. */
static int convert_window(const struct mg_boot_info *bi, mg_u64 rounds, int discard) {
    mg_u64 base = bi->data_ram_start + 0x100000 + bi->vcpu_index * WINDOW;
    mg_u64 last[2] = {0, 0}; /* last word written through the private [0] and shared [1] alias */
    for (mg_u64 i = 0; i < 2 * rounds; i++) {
        int to_shared = (i & 1) == 0, s = to_shared ? 1 : 0;
        if (mg_map_gpa_range(bi, base, WINDOW_PAGES, !to_shared) != 0) return fail(bi, "conversion refused in round", i);
        mg_u64 expected = discard ? 0 : last[s];
        mg_u64 next = ((mg_u64)bi->vcpu_index + 1) << 48 | (mg_u64)s << 40 | (i + 1);
        for (mg_u64 page = 0; page < WINDOW_PAGES; page++) {
            volatile mg_u64 *p = (volatile mg_u64 *)(to_shared ? mg_shared_ptr(bi, base + page * PAGE) : mg_private_ptr(bi, base + page * PAGE));
            if (*p != expected) return fail(bi, "stale or lost data in round", i);
            *p = next;
            if (*p != next) return fail(bi, "write did not stick in round", i);
        }
        last[s] = next;
    }
    return 0;
}

static int finish(const struct mg_boot_info *bi, int status) {
    if (status != 0) return status;
    if (__atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST) == bi->vcpu_count) {
        mg_puts("all vcpus passed\n");
        return 0;
    }
    mg_halt();
}

int mg_main(const struct mg_boot_info *bi) {
    const char *s = bi->cmdline;
    int bystanders = *s == 'b', race = *s == 'r';
    while (*s && *s != ' ') s++;
    while (*s == ' ') s++;
    mg_u64 rounds = 0;
    while (*s >= '0' && *s <= '9') rounds = rounds * 10 + (mg_u64)(*s++ - '0');
    while (*s == ' ') s++;
    int discard = *s != 'k';

    if (race) {
        volatile mg_u64 *flag = slot(bi, 0, 0);
        mg_u64 base = bi->data_ram_start + 0x100000;
        if (bi->vcpu_index == 0) {
            for (mg_u64 i = 0; i < 2 * rounds; i++) {
                if (mg_map_gpa_range(bi, base, WINDOW_PAGES, (int)(i & 1)) != 0) return fail(bi, "conversion refused in round", i);
            }
            __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) != bi->vcpu_count - 1) {}
            mg_puts("race done\n");
            return 0;
        }
        while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
            for (mg_u64 page = 0; page < WINDOW_PAGES; page++) {
                volatile mg_u64 *p = (volatile mg_u64 *)mg_private_ptr(bi, base + page * PAGE);
                *p = *p + 1;
            }
        }
        __atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST);
        mg_halt();
    }
    if (!bystanders) return finish(bi, convert_window(bi, rounds, discard));

    volatile mg_u64 *flag = slot(bi, 0, 0), *counter = slot(bi, 1, 0), *counts = slot(bi, 2, 0);
    if (bi->vcpu_index == 0) {
        int status = convert_window(bi, rounds, discard);
        __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) != bi->vcpu_count - 1) {}
        mg_u64 sum = 0;
        for (mg_u32 v = 1; v < bi->vcpu_count; v++) sum += counts[v];
        mg_puts("counter "); mg_put_u64(*counter); mg_puts(" sum "); mg_put_u64(sum); mg_puts("\n");
        if (status != 0) return status;
        return *counter == sum && sum > 0 ? 0 : fail(bi, "counter differs from the increments", sum);
    }
    mg_u64 mine = 0;
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
        mg_u64 old = __atomic_load_n(counter, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(counter, &old, old + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {}
        mine++;
    }
    counts[bi->vcpu_index] = mine;
    __atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST);
    mg_halt();
}
