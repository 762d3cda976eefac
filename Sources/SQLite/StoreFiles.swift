import Glibc

/// Why a file beside the database was refused.
public struct StoreFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public let errno: Int32

    public var description: String {
        errno == 0 ? "\(path): \(problem)" : "\(path): \(problem): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The files an agent keeps beside its database (`<db>`, `-wal`, `-shm`, `-ring`,
/// `.lock`). An agent often runs as root in a directory others may write to, so
/// none of them is ever reached through a link: a symbolic link, a hard link to
/// another file, something that is not a plain file, or a file of another owner
/// is refused with its path, and whatever it points to is never touched.
public enum StoreFiles {
    /// Suffixes of the files SQLite keeps beside a database in WAL mode.
    public static let sqliteSuffixes = ["", "-wal", "-shm"]

    /// Opens (creating it 0600 if missing) a file the store owns, read-write; never follows a link.
    public static func open(_ path: String) throws(StoreFileError) -> Int32 {
        // Safety: open/fstat/close on a path string and our own descriptor; every result is checked.
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP {
                throw StoreFileError(
                    path: path, problem: "is a symbolic link; the agent never writes through one (remove it)", errno: 0)
            }
            throw StoreFileError(path: path, problem: "cannot open it", errno: code)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw StoreFileError(path: path, problem: "cannot stat it", errno: code)
        }
        if let problem = Self.problem(with: info) {
            close(fd)
            throw StoreFileError(path: path, problem: problem, errno: 0)
        }
        // O_NONBLOCK only kept a FIFO from blocking the open; plain files ignore it, but clear it anyway.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// Checks a file SQLite will open or create: absent, or a plain file of ours (SQLite
    /// itself opens `-wal` and `-shm` without following links; this names the problem).
    public static func check(_ path: String) throws(StoreFileError) {
        var info = stat()
        // Safety: lstat on a path string into a local stat.
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw StoreFileError(path: path, problem: "cannot stat it", errno: errno)
        }
        if info.st_mode & S_IFMT == S_IFLNK {
            throw StoreFileError(
                path: path, problem: "is a symbolic link; the agent never writes through one (remove it)", errno: 0)
        }
        if let problem = Self.problem(with: info) { throw StoreFileError(path: path, problem: problem, errno: 0) }
    }

    /// What is wrong with a file the store would write, or nil. Pure.
    public static func problem(with info: stat, owner: uid_t = geteuid()) -> String? {
        if info.st_mode & S_IFMT != S_IFREG { return "is not a plain file; remove it or choose another --db" }
        if info.st_nlink > 1 {
            return "has \(info.st_nlink) hard links; the agent writes only files of its own (remove it)"
        }
        if info.st_uid != owner {
            return "belongs to uid \(info.st_uid), not to this agent's uid \(owner); remove it or choose another --db"
        }
        return nil
    }
}
