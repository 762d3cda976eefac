import APITypes
import ArgumentParser
import Controller
import Foundation

/// Output helpers shared by the commands. Everything printed passes through
/// `TerminalText.sanitize`: agents (and guests naming their VMs) supply much of
/// it, and none of it may drive the operator's terminal.
enum Out {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((TerminalText.sanitize(text) + "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data(("memgatectl: " + TerminalText.sanitize(text) + "\n").utf8))
    }

    /// Pretty, sorted, snake_case JSON on stdout.
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = APIJSON.encoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// One line of JSON (for streams such as `events --follow`).
    static func jsonLine<T: Encodable>(_ value: T) throws {
        line(String(decoding: try APIJSON.encoder().encode(value), as: UTF8.self))
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
