import Foundation

/// Shared by the benchmark programs: result files and time conversion.
public enum BenchmarkResults {
    /// Appends a timestamped RESULT line to `path` (created with its folder if missing).
    public static func append(_ line: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let stamped = Data("\(ISO8601DateFormatter().string(from: Date())) \(line)\n".utf8)
        if let handle = try? FileHandle(forWritingTo: url) {
            handle.seekToEndOfFile()
            handle.write(stamped)
            try handle.close()
        } else {
            try stamped.write(to: url)
        }
    }

    /// Runs a C baseline program and returns the number after `field=` in its output.
    public static func runBaseline(_ path: String, _ arguments: [String], field: String) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let prefix = field + "="
        guard process.terminationStatus == 0,
            let token = output.split(whereSeparator: { $0 == " " || $0 == "\n" }).first(where: { $0.hasPrefix(prefix) }
            ),
            let value = Double(token.dropFirst(prefix.count))
        else {
            throw BenchmarkError("baseline \(path) failed (status \(process.terminationStatus)): \(output)")
        }
        return value
    }

    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

public struct BenchmarkError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
