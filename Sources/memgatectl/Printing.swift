import APITypes
import ArgumentParser
import Controller
import Foundation
import JSON
import Platform

/// Output helpers shared by the commands. Everything printed passes through
/// `TerminalText.sanitize`: agents (and guests naming their VMs) supply much of
/// it, and none of it may drive the operator's terminal.
enum Out {
    static func line(_ text: String) {
        write(Array((TerminalText.sanitize(text) + "\n").utf8))
    }

    /// Writes stdout with write(2): a reader that went away (`| head`) ends the command
    /// quietly, as SIGPIPE would, instead of trapping in FileHandle.
    private static func write(_ bytes: [UInt8]) {
        guard let error = OutputDescriptor.standardOutput.writeAll(bytes) else { return }
        if error == EPIPE { exit(0) }
        FileHandle.standardError.write(
            Data("memgatectl: cannot write the output: \(String(cString: strerror(error)))\n".utf8))
        exit(1)
    }

    /// Text as it came (a console), without a newline of its own; control characters escaped
    /// except newlines and tabs, which a console needs.
    static func text(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: "\t", omittingEmptySubsequences: false).map { TerminalText.sanitize(String($0)) }
                .joined(separator: "\t")
        }
        write(Array(lines.joined(separator: "\n").utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data(("memgatectl: " + TerminalText.sanitize(text) + "\n").utf8))
    }

    /// Pretty, sorted, snake_case JSON on stdout.
    /// - Parameter format: the command's `-o` (json, yaml, name or jsonpath; a table command's own JSON is json).
    static func json<T: Encodable>(_ value: T, as format: OutputFormat = .json) throws {
        let encoder = APIJSON.encoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try emit(try encoder.encode(value), format)
    }

    /// JSON as it is, or what `-o jsonpath=` selects from it, or the same shape as YAML, or the names in it.
    private static func emit(_ bytes: Data, _ chosen: OutputFormat) throws {
        if case .json = chosen { return line(String(decoding: bytes, as: UTF8.self)) }
        // Our own encoder's output is strict JSON; a failure here would be a bug, said as such.
        guard let document = try? StrictJSON.parse([UInt8](bytes)) else {
            throw CtlFailure.failed("internal: output is not JSON")
        }
        switch chosen {
        case .jsonPath(let path):
            let text = path.render(document)
            if !text.isEmpty { line(text) }
        case .yaml:
            line(YAMLText.render(document))
        case .name:
            for name in names(in: document) { line(name) }
        case .json, .table, .wide:
            line(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// `-o name`: `HOST/NAME` for each item of a list (its `name`, else its `id` or `event_id`), the host of each
    /// per-host report, and the `name` (else `id`) of a single object.
    static func names(in document: JSONValue) -> [String] {
        func text(_ value: JSONValue?) -> String? {
            switch value {
            case .string(let text)?: text
            case .number(let text)?: text
            default: nil
            }
        }
        func name(_ item: JSONValue) -> String? { text(item["name"]) ?? text(item["id"]) ?? text(item["event_id"]) }
        if case .array(let items)? = document["items"] {
            return items.compactMap { item in
                guard let name = name(item) else { return nil }
                return text(item["host"]).map { "\($0)/\(name)" } ?? name
            }
        }
        if case .array(let hosts)? = document["hosts"] { return hosts.compactMap { text($0["host"]) } }
        return [text(document["host"]).map { host in name(document).map { "\(host)/\($0)" } ?? host } ?? name(document)]
            .compactMap { $0 }
    }

    /// One line of JSON (for streams such as `events --follow`).
    static func jsonLine<T: Encodable>(_ value: T, as format: OutputFormat = .json) throws {
        try emit(try APIJSON.encoder().encode(value), format)
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
    /// A paged listing's `--cursor` to continue with, when more rows match.
    var nextCursor: String? = nil
}

/// `-o`: how a command prints.
enum OutputFormat: ExpressibleByArgument, Equatable, Sendable {
    case table, wide, json, yaml, name
    case jsonPath(JSONPath)

    init?(argument: String) {
        switch argument {
        case "table": self = .table
        case "wide": self = .wide
        case "json": self = .json
        case "yaml": self = .yaml
        case "name": self = .name
        default:
            guard argument.hasPrefix("jsonpath="),
                let path = try? JSONPath(String(argument.dropFirst("jsonpath=".count)))
            else { return nil }
            self = .jsonPath(path)
        }
    }

    var isStructured: Bool {
        switch self {
        case .json, .jsonPath, .yaml, .name: true
        case .table, .wide: false
        }
    }

    static var allValueStrings: [String] { ["table", "wide", "json", "yaml", "name", "jsonpath=EXPR"] }

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// `-o VALUE`, with the reason when it is none of the forms (a JSONPath's names the part it does not take).
    static func parse(_ text: String) throws -> OutputFormat {
        if text.hasPrefix("jsonpath=") {
            do throws(JSONPath.SyntaxError) {
                return .jsonPath(try JSONPath(String(text.dropFirst("jsonpath=".count))))
            } catch {
                throw Invalid(description: error.description)
            }
        }
        guard let format = OutputFormat(argument: text) else {
            throw Invalid(description: "takes table, wide, json, yaml, name or jsonpath=EXPR, not \(text)")
        }
        return format
    }

    /// kubectl's habit: `-ojson`, `-ojsonpath=...` with the value attached to `-o`, which ArgumentParser would
    /// read as a cluster of short flags; `-o=VALUE` and `--output VALUE` already work. Stops at `--`. Pure.
    static func attachedValuesSeparated(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var literal = false
        for argument in arguments {
            if literal || argument == "--" {
                literal = true
                out.append(argument)
            } else if argument.hasPrefix("-o"), argument.count > 2, !argument.hasPrefix("-o=") {
                out += ["-o", String(argument.dropFirst(2))]
            } else {
                out.append(argument)
            }
        }
        return out
    }
}

/// The one line a large fleet's table ends with instead of a row per host.
enum Summary {
    /// `10000 hosts: 9990 applied, 10 unreachable (give --verbose for a row per host)`.
    static func line(_ results: [String]) -> String {
        let counts = Dictionary(grouping: results, by: { $0 }).mapValues(\.count).sorted {
            $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key
        }
        return "\(results.count) hosts: " + counts.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            + " (give --verbose for a row per host)"
    }
}

/// `1 host`, `2 hosts`, `0 hosts`: a count with its noun, plural unless it is one.
func counted(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}
