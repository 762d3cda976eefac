/* CSQLite: the system libsqlite3 plus typed wrappers for what Swift cannot call
 * directly (SQLITE_TRANSIENT is a macro casting -1 to a function pointer). No logic. */
#ifndef CSQLITE_H
#define CSQLITE_H
#include <sqlite3.h>

static inline int csqlite_bind_text(sqlite3_stmt *statement, int index, const char *text, int bytes) {
    return sqlite3_bind_text(statement, index, text, bytes, SQLITE_TRANSIENT);
}
/* 1 when the database file was unlinked or replaced under an open connection
 * (SQLITE_FCNTL_HAS_MOVED), 0 when not, -1 when SQLite cannot tell. */
static inline int csqlite_file_has_moved(sqlite3 *db) {
    int moved = 0;
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK ? moved : -1;
}
#endif
