import CLinux
import Foundation
import Glibc

/// Why a VM process could not be started.
public struct VMSpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A VM process just started: its pid, a pidfd that names it, and what it built.
public struct SpawnedVM: Sendable {
    public let pid: Int32
    public let pidfd: Int32
    public let ready: VMReady
}

/// Starts `memgate-agent vm process` for one VM: the same binary, a new process in its
/// own session (a signal to the agent's process group does not reach it), with
/// nothing of the agent's but four descriptors: /dev/null, the ready pipe, its log
/// file, and two sealed-by-convention memfds holding its spec and image.
public struct VMSpawner: Sendable {
    public let executable: String
    public let runDirectory: RunDirectory
    /// Seconds to wait for the VM process to build its VM and say so.
    public var readyTimeoutSeconds: Int32 = 120

    public init(executable: String, runDirectory: RunDirectory) {
        self.executable = executable
        self.runDirectory = runDirectory
    }

    /// The running binary itself: /proc/self/exe execs the agent's own image even after an upgrade
    /// replaced (or removed) the file, so a VM process always speaks its agent's protocol.
    public static let currentExecutable = "/proc/self/exe"

    /// argv[0] of VM processes, as `ps` shows them.
    static let displayName = "memgate-agent"

    public func spawn(_ spec: VMProcessSpec, image: [UInt8], logLevel: String) throws(VMSpawnError) -> SpawnedVM {
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func memfd(_ name: String, _ bytes: [UInt8]) throws(VMSpawnError) -> Int32 {
            let fd = clinux_memfd_create(name)
            guard fd >= 0 else { throw VMSpawnError("memfd_create: \(String(cString: strerror(errno)))") }
            opened.append(fd)
            var offset = 0
            while offset < bytes.count {
                // Safety: write from our array's storage within its count, to our own memfd.
                let written = bytes.withUnsafeBytes {
                    Glibc.write(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset)
                }
                guard written > 0 else {
                    throw VMSpawnError("writing the VM's \(name): \(String(cString: strerror(errno)))")
                }
                offset += written
            }
            return fd
        }
        let specFD = try memfd("memgate-vm-spec", [UInt8](WireCoding.encode(spec)))
        let imageFD = try memfd("memgate-vm-image", image)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw VMSpawnError("open /dev/null: \(String(cString: strerror(errno)))") }
        opened.append(devNull)
        let log = open(runDirectory.logPath(spec.vmID), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard log >= 0 else {
            throw VMSpawnError("open \(runDirectory.logPath(spec.vmID)): \(String(cString: strerror(errno)))")
        }
        opened.append(log)
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0, fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC) == 0,
            fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC) == 0
        else { throw VMSpawnError("pipe2: \(String(cString: strerror(errno)))") }
        opened.append(pipeFDs[1])
        // Another thread may spawn between pipe and fcntl: it only inherits until its exec (closefrom).
        let readyFD = pipeFDs[0]
        defer { close(readyFD) }

        let arguments = [
            Self.displayName, "vm", "process", "--run-dir", runDirectory.path, "--vm-id", "\(spec.vmID)", "--log-level",
            logLevel,
        ]
        var pid: Int32 = 0
        let descriptors: [Int32] = [devNull, pipeFDs[1], log, specFD, imageFD]
        // Safety: argv as NUL-terminated C strings that live across the call; descriptors are ours.
        let result = withCStrings(arguments) { argv in
            descriptors.withUnsafeBufferPointer { fds in
                clinux_spawn_session(executable, argv, fds.baseAddress, Int32(fds.count), &pid)
            }
        }
        guard result == 0 else {
            throw VMSpawnError("could not start \(executable): \(String(cString: strerror(result)))")
        }
        let pidfd = clinux_pidfd_open(pid)
        // Our end of the pipe closes now, so EOF means the VM process is gone.
        for fd in opened { close(fd) }
        opened = []
        guard pidfd >= 0 else { throw VMSpawnError("pidfd_open(\(pid)): \(String(cString: strerror(errno)))") }
        let line = readLine(readyFD)
        guard let ready = line.flatMap({ WireCoding.decode(VMReady.self, from: Data($0)) }), ready.error == nil,
            ready.pid == pid
        else {
            // How it ended, if it did on its own, before it is killed.
            let endedOnItsOwn = clinux_poll_readable(pidfd, 0) == 1
            if !endedOnItsOwn { _ = clinux_pidfd_signal(pidfd, SIGKILL) }
            var code: Int32 = 0, signal: Int32 = 0
            _ = clinux_poll_readable(pidfd, 5000)
            let reaped = clinux_pidfd_reap(pidfd, &code, &signal) == 1
            close(pidfd)
            let how =
                !endedOnItsOwn
                ? "did not say it was ready within \(readyTimeoutSeconds) s"
                : !reaped ? "ended" : signal != 0 ? "was killed by signal \(signal)" : "exited with status \(code)"
            let said = line.flatMap { WireCoding.decode(VMReady.self, from: Data($0)) }?.error
            throw VMSpawnError(
                said
                    ?? (line == nil
                        ? "the VM process (pid \(pid)) \(how) before it was ready (its log: \(runDirectory.logPath(spec.vmID)))"
                        : "the VM process's ready line was not understood"))
        }
        return SpawnedVM(pid: pid, pidfd: pidfd, ready: ready)
    }

    /// Starts a spare VM process: exec'd and its runtime started, waiting on two pipes for the
    /// spec and image of the next VM, so a create does not wait for a process to start.
    public func spawnSpare(logLevel: String) throws(VMSpawnError) -> SpareVMProcess {
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func pipePair() throws(VMSpawnError) -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw VMSpawnError("pipe: \(String(cString: strerror(errno)))") }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            return (fds[0], fds[1])
        }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw VMSpawnError("open /dev/null: \(String(cString: strerror(errno)))") }
        opened.append(devNull)
        let logPath = runDirectory.path + "/spare-\(UUID().uuidString.prefix(8)).log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw VMSpawnError("open \(logPath): \(String(cString: strerror(errno)))") }
        opened.append(log)
        let ready = try pipePair(), spec = try pipePair(), image = try pipePair()
        opened += [ready.write, spec.read, image.read]
        var keep = [ready.read, spec.write, image.write]
        defer { for fd in keep { close(fd) } }
        let arguments = [
            Self.displayName, "vm", "process", "--run-dir", runDirectory.path, "--spare", "--log-level", logLevel,
        ]
        var pid: Int32 = 0
        let descriptors: [Int32] = [devNull, ready.write, log, spec.read, image.read]
        // Safety: argv as NUL-terminated C strings that live across the call; descriptors are ours.
        let result = withCStrings(arguments) { argv in
            descriptors.withUnsafeBufferPointer { fds in
                clinux_spawn_session(executable, argv, fds.baseAddress, Int32(fds.count), &pid)
            }
        }
        guard result == 0 else {
            throw VMSpawnError("could not start \(executable): \(String(cString: strerror(result)))")
        }
        let pidfd = clinux_pidfd_open(pid)
        guard pidfd >= 0 else { throw VMSpawnError("pidfd_open(\(pid)): \(String(cString: strerror(errno)))") }
        keep = []
        return SpareVMProcess(
            pid: pid, pidfd: pidfd, readyFD: ready.read, specFD: spec.write, imageFD: image.write, logPath: logPath)
    }

    /// Hands a spare its VM: the spec, then the image, then waits for it to say it is ready.
    public func assign(_ spare: SpareVMProcess, spec: VMProcessSpec, image: [UInt8]) throws(VMSpawnError) -> SpawnedVM {
        // The spare's log becomes the VM's (the descriptor it writes to stays the same).
        _ = rename(spare.logPath, runDirectory.logPath(spec.vmID))
        let handedOver = spare.send([UInt8](WireCoding.encode(spec)), image: image)
        guard handedOver else {
            spare.discard()
            throw VMSpawnError("the spare VM process did not take its spec")
        }
        let line = readLine(spare.readyFD)
        spare.closeReady()
        guard let ready = line.flatMap({ WireCoding.decode(VMReady.self, from: Data($0)) }), ready.error == nil,
            ready.pid == spare.pid
        else {
            let said = line.flatMap { WireCoding.decode(VMReady.self, from: Data($0)) }?.error
            spare.discard()
            throw VMSpawnError(
                said
                    ?? "the VM process ended, or did not say it was ready (its log: \(runDirectory.logPath(spec.vmID)))"
            )
        }
        return SpawnedVM(pid: spare.pid, pidfd: spare.takePidfd(), ready: ready)
    }

    /// One line from the ready pipe, within the timeout; nil on EOF or timeout.
    private func readLine(_ fd: Int32) -> [UInt8]? {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(TimeInterval(readyTimeoutSeconds))
        while line.count < 65_536 {
            let left = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
            guard left > 0 else { return nil }
            let ready = clinux_poll_readable(fd, left)
            // A signal (SIGCHLD when another VM process ends) interrupts the wait; it is not an answer.
            if ready < 0 && errno == EINTR { continue }
            guard ready == 1 else { return nil }
            // Safety: read into our buffer within its count.
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return line.isEmpty ? nil : line }
            line += buffer[0..<count]
            if let newline = line.firstIndex(of: UInt8(ascii: "\n")) { return Array(line[..<newline]) }
        }
        return nil
    }
}

/// Runs `body` with `strings` as a NULL-terminated `char *[]`.
func withCStrings<T>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> T) -> T {
    // Safety: strdup'd copies live until after body returns, then are freed.
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}

/// A VM process started before it was needed, holding the agent's ends of its pipes.
public final class SpareVMProcess: @unchecked Sendable {
    public let pid: Int32
    private var pidfd: Int32
    let readyFD: Int32
    private var specFD: Int32
    private var imageFD: Int32
    let logPath: String
    private let lock = NSLock()

    init(pid: Int32, pidfd: Int32, readyFD: Int32, specFD: Int32, imageFD: Int32, logPath: String) {
        self.pid = pid
        self.pidfd = pidfd
        self.readyFD = readyFD
        self.specFD = specFD
        self.imageFD = imageFD
        self.logPath = logPath
    }

    /// Writes the spec, closes it, then the image (the spare reads them in that order); false if it is gone.
    func send(_ spec: [UInt8], image: [UInt8]) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let sent = Self.writeAll(specFD, spec)
        close(specFD)
        specFD = -1
        let imaged = sent && Self.writeAll(imageFD, image)
        close(imageFD)
        imageFD = -1
        return imaged
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            // Safety: write from our array's storage within its count, to our pipe (SIGPIPE is ignored: EPIPE if it is gone).
            let written = bytes.withUnsafeBytes {
                Glibc.write(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    private var readyOpen = true

    func closeReady() {
        lock.lock()
        defer { lock.unlock() }
        if readyOpen { close(readyFD) }
        readyOpen = false
    }

    /// The pidfd, now the caller's.
    func takePidfd() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        let fd = pidfd
        pidfd = -1
        return fd
    }

    /// Ends a spare that will not be used, and reaps it.
    public func discard() {
        lock.lock()
        defer { lock.unlock() }
        if specFD >= 0 {
            close(specFD)
            specFD = -1
        }
        if imageFD >= 0 {
            close(imageFD)
            imageFD = -1
        }
        if readyOpen {
            close(readyFD)
            readyOpen = false
        }
        guard pidfd >= 0 else { return }
        _ = clinux_pidfd_signal(pidfd, SIGKILL)
        var code: Int32 = 0, signal: Int32 = 0
        _ = clinux_poll_readable(pidfd, 5000)
        _ = clinux_pidfd_reap(pidfd, &code, &signal)
        close(pidfd)
        pidfd = -1
        unlink(logPath)
    }
}
