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

    public struct MissingArtifact: Error, CustomStringConvertible {
        public let path: String
        public let hint: String
        public var description: String { "\(path) is missing: \(hint)" }
    }

    public struct ProcessResult: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs a program to completion and captures its output.
    public static func run(_ path: String, _ arguments: [String]) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes before waiting so a chatty child cannot block on a full pipe.
        let errData = Box<Data>()
        let reader = Thread { errData.value = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errData.value == nil { usleep(1000) }
        return ProcessResult(status: process.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData.value ?? Data(), as: UTF8.self))
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
