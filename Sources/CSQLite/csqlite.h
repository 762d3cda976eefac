/* CSQLite: the system libsqlite3 plus typed wrappers for what Swift cannot call
 * directly (SQLITE_TRANSIENT is a macro casting -1 to a function pointer). No logic. */
#ifndef CSQLITE_H
#define CSQLITE_H
#include <sqlite3.h>

static inline int csqlite_bind_text(sqlite3_stmt *statement, int index, const char *text, int bytes) {
    return sqlite3_bind_text(statement, index, text, bytes, SQLITE_TRANSIENT);
}
#endif
