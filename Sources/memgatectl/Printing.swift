import APITypes
import ArgumentParser
import Controller
import Foundation
import JSON
import Platform
import Synchronization

/// Output helpers shared by the commands. Everything printed passes through
/// `TerminalText.sanitize`: agents (and guests naming their VMs) supply much of
/// it, and none of it may drive the operator's terminal.
enum Out {
    /// The command's output format (set once, from its `FleetOptions`).
    static let format = Mutex(OutputFormat.json)

    static func line(_ text: String) {
        write(Array((TerminalText.sanitize(text) + "\n").utf8))
    }

    /// Writes stdout with write(2): a reader that went away (`| head`) ends the command
    /// quietly, as SIGPIPE would, instead of trapping in FileHandle.
    private static func write(_ bytes: [UInt8]) {
        guard let error = OutputDescriptor.standardOutput.writeAll(bytes) else { return }
        if error == EPIPE { exit(0) }
        FileHandle.standardError.write(Data("memgatectl: cannot write the output: \(String(cString: strerror(error)))\n".utf8))
        exit(1)
    }

    /// Text as it came (a console), without a newline of its own; control characters escaped
    /// except newlines and tabs, which a console needs.
    static func text(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: "\t", omittingEmptySubsequences: false).map { TerminalText.sanitize(String($0)) }.joined(separator: "\t")
        }
        write(Array(lines.joined(separator: "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data(("memgatectl: " + TerminalText.sanitize(text) + "\n").utf8))
    }

    /// Pretty, sorted, snake_case JSON on stdout.
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = APIJSON.encoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try emit(try encoder.encode(value))
    }

    /// JSON as it is, or what `-o jsonpath=` selects from it.
    private static func emit(_ bytes: Data) throws {
        if case .jsonPath(let path) = format.withLock({ $0 }) {
            // Our own encoder's output is strict JSON; a failure here would be a bug, said as such.
            guard let document = try? StrictJSON.parse([UInt8](bytes)) else { throw CtlFailure.failed("internal: output is not JSON") }
            let text = path.render(document)
            if !text.isEmpty { line(text) }
            return
        }
        line(String(decoding: bytes, as: UTF8.self))
    }

    /// One line of JSON (for streams such as `events --follow`).
    static func jsonLine<T: Encodable>(_ value: T) throws {
        try emit(try APIJSON.encoder().encode(value))
    }

    /// Hosts that failed, on stderr (tables) — JSON carries them in `failures`.
    static func failures<T>(_ outcomes: [HostOutcome<T>]) {
        for outcome in outcomes {
            if let failure = outcome.failure { error("\(outcome.host.name): \(failure)") }
        }
    }

    static func failureList<T>(_ outcomes: [HostOutcome<T>]) -> [HostFailureRow] {
        outcomes.compactMap { outcome in
            outcome.failure.map { HostFailureRow(host: outcome.host.name, kind: $0.kind, error: "\($0)") }
        }
    }

    /// Exit 1 when any host failed.
    static func finish<T>(_ outcomes: [HostOutcome<T>]) throws {
        let status = Merge.exitStatus(outcomes)
        if status != 0 { throw CtlFailure.hostsFailed }
    }
}

/// `{"host": ..., "kind": ..., "error": ...}` in every JSON answer's `failures`.
struct HostFailureRow: Codable {
    var host: String
    var kind: String
    var error: String
}

/// A row of another type tagged with its host, flattened into one JSON object.
struct HostTagged<Row: Encodable>: Encodable {
    var host: String
    var row: Row

    func encode(to encoder: Encoder) throws {
        try row.encode(to: encoder)
        var container = encoder.container(keyedBy: HostKey.self)
        try container.encode(host, forKey: .host)
    }

    enum HostKey: String, CodingKey { case host }
}

struct Listing<Row: Encodable>: Encodable {
    var items: [HostTagged<Row>]
    var failures: [HostFailureRow]
}

/// `-o`: how a command prints.
enum OutputFormat: ExpressibleByArgument, Equatable, Sendable {
    case table, wide, json
    case jsonPath(JSONPath)

    init?(argument: String) {
        switch argument {
        case "table": self = .table
        case "wide": self = .wide
        case "json": self = .json
        default:
            guard argument.hasPrefix("jsonpath="), let path = try? JSONPath(String(argument.dropFirst("jsonpath=".count))) else { return nil }
            self = .jsonPath(path)
        }
    }

    var isStructured: Bool {
        switch self {
        case .json, .jsonPath: true
        case .table, .wide: false
        }
    }

    static var allValueStrings: [String] { ["table", "wide", "json", "jsonpath=EXPR"] }
}

/// The one line a large fleet's table ends with instead of a row per host.
enum Summary {
    /// `10000 hosts: 9990 applied, 10 unreachable (give --verbose for a row per host)`.
    static func line(_ results: [String]) -> String {
        let counts = Dictionary(grouping: results, by: { $0 }).mapValues(\.count).sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        return "\(results.count) hosts: " + counts.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + " (give --verbose for a row per host)"
    }
}
