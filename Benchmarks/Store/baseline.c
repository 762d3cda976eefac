/*
 * Baseline for `make bench-store`: inserts N conversion rows with SQLite's C
 * API, one prepared statement, one transaction, into a fresh database built
 * from the same migration file the agent uses. WAL, synchronous=NORMAL.
 * Usage: store-c DB MIGRATION.sql N
 * Prints: c_rows_per_s=<n> rows=<n> seconds=<s>
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void check(int rc, sqlite3 *db, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE) { fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db)); exit(2); }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s DB MIGRATION.sql N\n", argv[0]); return 2; }
    long n = atol(argv[3]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 2; }
    static char schema[1 << 20];
    size_t len = fread(schema, 1, sizeof schema - 1, f);
    fclose(f);
    schema[len] = 0;

    sqlite3 *db;
    check(sqlite3_open(argv[1], &db), db, "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", 0, 0, 0), db, "pragmas");
    check(sqlite3_exec(db, schema, 0, 0, 0), db, "schema");
    check(sqlite3_exec(db, "INSERT INTO vms (vm_id, name, memory_bytes, vcpus, backend, data_ram_start, data_ram_size, initial_state, created_ns) "
                           "VALUES (1, 'bench', 33554432, 2, 'alias', 2097152, 31457280, 'private', 1)", 0, 0, 0), db, "vm");
    sqlite3_stmt *insert;
    check(sqlite3_prepare_v2(db,
        "INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision, "
        "reason, policy_version, source, changed_bytes, discarded_bytes, guest_result) "
        "VALUES (?, 1, ?, ?, ?, ?, 4096, 'to_shared', 'explicit', 'denied', 'rule 0 (deny)', "
        "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'emulated', 0, 0, -1)", -1, &insert, 0), db, "prepare");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    check(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
    for (long i = 0; i < n; i++) {
        sqlite3_bind_int64(insert, 1, i + 1);
        sqlite3_bind_int64(insert, 2, i & 1);
        sqlite3_bind_int64(insert, 3, 1700000000000000000LL + i);
        sqlite3_bind_int64(insert, 4, 1700000000000000000LL + i + 1000);
        sqlite3_bind_int64(insert, 5, 0x200000 + (i % 64) * 4096);
        check(sqlite3_step(insert), db, "insert");
        sqlite3_reset(insert);
    }
    check(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("c_rows_per_s=%.0f rows=%ld seconds=%.3f\n", (double)n / seconds, n, seconds);
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return 0;
}
