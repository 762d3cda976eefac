import Glibc
import Synchronization

/// An exclusive `flock` on `<database>.lock`, held by the one process that records
/// into a database. Readers (`sqlite3`, `db check`, `db prune`) do not take it.
final class WriterLock: Sendable {
    private let fd: Mutex<Int32>

    init(databasePath: String) throws(EventStoreError) {
        let path = databasePath + ".lock"
        // Safety: open/flock on a path we own; the fd is closed in deinit, which releases the lock.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw .busy("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "another memgate-agent is recording into \(databasePath); give each agent its own --db"
                                              : "cannot lock \(path): \(String(cString: strerror(errno)))"
            close(fd)
            throw .busy(reason)
        }
        self.fd = Mutex(fd)
    }

    /// Gives the database up for another writer (idempotent).
    func release() {
        fd.withLock { fd in
            // Safety: closes the descriptor opened in init exactly once.
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    deinit {
        release()
    }
}
