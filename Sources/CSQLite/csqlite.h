/* CSQLite: the system libsqlite3 plus typed wrappers for what Swift cannot call
 * directly (SQLITE_TRANSIENT is a macro casting -1 to a function pointer). No logic. */
#ifndef CSQLITE_H
#define CSQLITE_H
#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

static inline int csqlite_bind_text(sqlite3_stmt *statement, int index, const char *text, int bytes) {
    return sqlite3_bind_text(statement, index, text, bytes, SQLITE_TRANSIENT);
}
/* SQLite's default busy handler sleeps 1, 2, 5, 10, ... 100 ms between tries, so a
 * lock held for 2 ms can cost a waiter 100 ms. This one retries every 250 us until
 * `timeout_ms` have passed; the timeout travels in the handler's pointer argument. */
static int csqlite_short_busy_wait(void *timeout_ms, int tries) {
    if ((int64_t)tries * 250 >= (int64_t)(intptr_t)timeout_ms * 1000) return 0;
    usleep(250);
    return 1;
}

static inline int csqlite_set_busy_timeout(sqlite3 *db, int timeout_ms) {
    return sqlite3_busy_handler(db, csqlite_short_busy_wait, (void *)(intptr_t)timeout_ms);
}

/* 1 when the database file was unlinked or replaced under an open connection
 * (SQLITE_FCNTL_HAS_MOVED), 0 when not, -1 when SQLite cannot tell. */
static inline int csqlite_file_has_moved(sqlite3 *db) {
    int moved = 0;
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK ? moved : -1;
}
#endif
