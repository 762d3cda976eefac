import Foundation
import Glibc

/// Why the run directory, or a file in it, was refused.
public struct RunDirectoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "\(path): \(problem)" }
}

/// The directory where VM processes keep their sockets, rings and logs (`--run-dir`).
/// It is the agent's own: a directory (not a link) of this user, mode 0700, so no one
/// else can reach a VM's socket or ring. Files in it are named by VM id and are never
/// reached through a link.
public struct RunDirectory: Sendable, Equatable {
    public let path: String

    /// Uses `path`, creating it 0700 if missing; refuses a link, another owner, or group/other access.
    public init(path: String) throws(RunDirectoryError) {
        self.path = path
        // Safety: mkdir/lstat on a path string into a local stat.
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw RunDirectoryError(path: path, problem: "cannot create it: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw RunDirectoryError(path: path, problem: "cannot stat it: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw RunDirectoryError(path: path, problem: "is not a directory (a link is never followed)")
        }
        guard info.st_uid == geteuid() else {
            throw RunDirectoryError(
                path: path, problem: "belongs to uid \(info.st_uid), not to this user (\(geteuid()))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw RunDirectoryError(
                path: path, problem: "is mode \(String(info.st_mode & 0o777, radix: 8)); it must be 0700 (chmod 700 it)"
            )
        }
    }

    /// Held by the one agent that uses this directory: a second agent on it is refused, since
    /// VM ids (and so file names) are only unique within one store. Released when the process ends.
    public func lock() throws(RunDirectoryError) -> Int32 {
        let path = self.path + "/agent.lock"
        // Safety: open/flock on a path string; the descriptor is the caller's for the process's life.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw RunDirectoryError(path: path, problem: "cannot open it: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw RunDirectoryError(
                path: self.path, problem: "another agent is using this run directory; give each agent its own --run-dir"
            )
        }
        return fd
    }

    /// A directory already checked (tests; listings of one the caller opened).
    init(unchecked path: String) { self.path = path }

    /// The default: /run/memgate for root, else $XDG_RUNTIME_DIR/memgate (or /tmp/memgate-UID).
    public static var defaultPath: String {
        if geteuid() == 0 { return "/run/memgate" }
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/memgate"
        }
        return "/tmp/memgate-\(geteuid())"
    }

    public func socketPath(_ id: Int64) -> String { "\(path)/vm-\(id).sock" }
    public func ringPath(_ id: Int64) -> String { "\(path)/vm-\(id).ring" }
    public func logPath(_ id: Int64) -> String { "\(path)/vm-\(id).log" }

    /// The VM ids with a socket or ring here.
    public func vmIDs() -> [Int64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let ids = names.compactMap { name -> Int64? in
            guard name.hasPrefix("vm-"), name.hasSuffix(".sock") || name.hasSuffix(".ring") else { return nil }
            return Int64(name.dropFirst(3).dropLast(5))
        }
        return Array(Set(ids)).sorted()
    }

    /// nil when `path` is a socket of this user, reached without a link; else what is wrong.
    public static func socketProblem(_ path: String) -> String? {
        var info = stat()
        // Safety: lstat on a path string into a local stat.
        guard lstat(path, &info) == 0 else { return "cannot stat it: \(String(cString: strerror(errno)))" }
        if info.st_mode & S_IFMT == S_IFLNK { return "is a symbolic link; a VM socket is never reached through one" }
        guard info.st_mode & S_IFMT == S_IFSOCK else { return "is not a socket" }
        guard info.st_uid == geteuid() else { return "belongs to uid \(info.st_uid), not to this user" }
        return nil
    }

    /// Removes a VM's socket and ring (never following a link: unlink removes the name itself).
    public func removeFiles(of id: Int64, keepLog: Bool = true) {
        unlink(socketPath(id))
        unlink(ringPath(id))
        if !keepLog { unlink(logPath(id)) }
    }
}
