import Glibc
import SQLite
import Synchronization

/// An exclusive `flock` on `<database>.lock`, held by the one process that records
/// into a database. Readers (`sqlite3`, `db check`, `db prune`) do not take it.
final class WriterLock: Sendable {
    private let fd: Mutex<Int32>

    init(databasePath: String) throws(EventStoreError) {
        let path = databasePath + ".lock"
        let fd: Int32
        do throws(StoreFileError) {
            fd = try StoreFiles.open(path)
        } catch {
            throw .unsafeFile(error)
        }
        // Safety: flock on the descriptor just opened; it is closed in deinit, which releases the lock.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason =
                errno == EWOULDBLOCK
                ? "another memgate-agent is recording into \(databasePath); give each agent its own --db"
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
