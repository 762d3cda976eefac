import Foundation

/// Locations and helpers the integration tests share.
public enum TestSupport {
    /// The package root, found from this file's path (Tests/TestSupport/TestSupport.swift).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// True when /dev/kvm can be opened read-write by this process.
    public static var kvmAvailable: Bool { access("/dev/kvm", R_OK | W_OK) == 0 }

    /// `.build/guests/NAME.elf`, built by `make guests` (which `make check` runs first).
    public static func guestPath(_ name: String) -> String {
        packageRoot.appendingPathComponent(".build/guests/\(name).elf").path
    }

    /// The bytes of a built guest; throws a message naming the missing step.
    public static func guestBytes(_ name: String) throws -> [UInt8] {
        let path = guestPath(name)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MissingArtifact(path: path, hint: "run `make guests` (make check does) before swift test")
        }
        return [UInt8](data)
    }

    /// The debug build of an executable product (`swift build` before `swift test`).
    public static func binaryPath(_ name: String) throws -> String {
        if let override = ProcessInfo.processInfo.environment["MEMGATE_BIN_DIR"] {
            return override + "/" + name
        }
        let path = packageRoot.appendingPathComponent(".build/debug/\(name)").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw MissingArtifact(path: path, hint: "run `swift build` (make check does) before swift test")
        }
        return path
    }

    /// The ```sql blocks of one README section (`## heading`), so the documented queries are the tested ones.
    public static func readmeQueries(section heading: String) throws -> [String] {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "## \(heading)\n")?.upperBound else {
            throw MissingArtifact(path: "README.md", hint: "it has no section \(heading)")
        }
        let end = readme.range(of: "\n## ", range: start..<readme.endIndex)?.lowerBound ?? readme.endIndex
        return readme[start..<end].components(separatedBy: "```sql\n").dropFirst()
            .compactMap { $0.components(separatedBy: "```").first?.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    public struct MissingArtifact: Error, CustomStringConvertible {
        public let path: String
        public let hint: String
        public var description: String { "\(path) is missing: \(hint)" }
        public init(path: String, hint: String) {
            self.path = path
            self.hint = hint
        }
    }

    public struct ProcessResult: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs `memgate-agent`; a `run` without --db/--no-record records into its own
    /// temporary database (removed afterwards), never into the working directory.
    public static func runAgent(_ arguments: [String]) throws -> ProcessResult {
        var arguments = arguments
        var database: String?
        if arguments.first == "run", !arguments.contains("--db"), !arguments.contains("--no-record") {
            database =
                FileManager.default.temporaryDirectory.appendingPathComponent("memgate-cli-\(UUID().uuidString).db")
                .path
            arguments += ["--db", database!]
        }
        defer {
            if let database {
                for suffix in ["", "-wal", "-shm", "-ring", ".lock"] {
                    try? FileManager.default.removeItem(atPath: database + suffix)
                }
            }
        }
        return try run(try binaryPath("memgate-agent"), arguments)
    }

    /// Seconds a program run by `run` may take before it is killed: far beyond any command's
    /// honest run, so only a hang reaches it, and the test then fails in minutes, not never.
    public static let hangBound: Double = 300

    /// Runs a program to completion and captures its output. A program still running after
    /// `hangBound` seconds is killed (SIGKILL), and its result says so on stderr.
    /// - Parameter environment: variables set (or, with nil, removed) for the child only.
    public static func run(_ path: String, _ arguments: [String], environment: [String: String?] = [:]) throws
        -> ProcessResult
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if !environment.isEmpty {
            var merged = ProcessInfo.processInfo.environment
            for (name, value) in environment { merged[name] = value }
            process.environment = merged
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let finished = DispatchSemaphore(value: 0), hung = Box<Bool>()
        Thread {
            if finished.wait(timeout: .now() + hangBound) == .timedOut {
                hung.value = true
                kill(process.processIdentifier, SIGKILL)
            }
        }.start()
        defer { finished.signal() }
        // Read both pipes before waiting so a chatty child cannot block on a full pipe.
        let errData = Box<Data>()
        let reader = Thread { errData.value = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errData.value == nil { usleep(1000) }
        let note =
            hung.value == true
            ? "\n[test support: \(path) \(arguments.joined(separator: " ")) did not end within \(Int(hangBound)) s; killed]"
            : ""
        return ProcessResult(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.value ?? Data(), as: UTF8.self) + note)
    }

    final class Box<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: T?
        var value: T? {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }
}

/// A child process whose output is collected while it runs, so a test can kill it mid-way.
public final class RunningProcess: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var collected = Data()
    private var collectedErrors = Data()
    private var readersDone = 0

    public init(_ path: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        for (handle, isError) in [(out.fileHandleForReading, false), (err.fileHandleForReading, true)] {
            Thread { [self] in
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    lock.withLock { if isError { collectedErrors.append(chunk) } else { collected.append(chunk) } }
                }
                lock.withLock { readersDone += 1 }
            }.start()
        }
    }

    /// What the process has written to stdout so far.
    public var stdout: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }
    public var pid: Int32 { process.processIdentifier }
    /// What the process has written to stderr so far.
    public var stderr: String { lock.withLock { String(decoding: collectedErrors, as: UTF8.self) } }

    public func kill(_ signal: Int32 = SIGKILL) {
        Foundation.kill(process.processIdentifier, signal)
    }

    /// Waits for exit and for the last output; returns the termination status.
    @discardableResult
    public func wait() -> Int32 {
        process.waitUntilExit()
        // The readers end at the pipes' end of file, just after exit; the bound only matters if a child
        // still holds a pipe, and a loaded machine may take seconds to schedule them.
        for _ in 0..<30_000 where lock.withLock({ readersDone }) < 2 { usleep(1000) }
        return process.terminationStatus
    }

    public var exitedBySignal: Bool { process.terminationReason == .uncaughtSignal }

    public var isRunning: Bool { process.isRunning }

    /// Waits up to `seconds` for the process to exit; false if it is still running.
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return !process.isRunning
    }
}
