import APITypes
import ArgumentParser
import Controller
import Foundation
import JSON
import MemoryModel

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Show, validate, diff and push the conversion policy across hosts.",
        subcommands: [Show.self, Validate.self, Diff.self, Push.self])

    /// The fleet and the policy file every command but `show` takes.
    struct FileArguments: ParsableArguments {
        @OptionGroup var fleet: FleetOptions
        @Argument(help: "The policy document (JSON).") var file: String

        func document() throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: file) else { throw CtlFailure.usage("cannot read \(file)") }
            return [UInt8](data)
        }

        /// The file's bytes and the policy they hold, checked here before any host is asked.
        func policy() throws -> (document: [UInt8], policy: VersionedPolicy) {
            let document = try document()
            do {
                return (document, try VersionedPolicy(document: document))
            } catch {
                throw CtlFailure.failed("\(file): invalid: \(error)")
            }
        }
    }

    /// One host's line in the answer of validate, diff and push.
    struct Row: Codable {
        var host: String
        var result: String
        var detail: String

        /// A host that gave no answer: its failure's kind and text.
        init<Value>(_ outcome: HostOutcome<Value>) {
            self.init(host: outcome.host.name, result: outcome.failure?.kind ?? "error", detail: outcome.failure.map { "\($0)" } ?? "")
        }

        init(host: String, result: String, detail: String) {
            self.host = host; self.result = result; self.detail = detail
        }

        static func print(_ rows: [Row], json: Bool) throws {
            if json { return try Out.json(["hosts": rows]) }
            var table = Table(["HOST", "RESULT", "DETAIL"])
            for row in rows { table.add([row.host, row.result, row.detail]) }
            Out.line(table.render())
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every host's policy version and name, hosts off the fleet's version flagged (exit 1), and the document when all agree.")
        @Option(help: "The version every host should run (a prefix will do); default: the one most hosts run.")
        var expectVersion: String?
        @OptionGroup var fleet: FleetOptions

        struct HostPolicy: Codable {
            var host: String
            var version: String?
            var name: String?
            /// `drift` (not the expected or majority version), `split` (no majority), or nil.
            var drift: String?
            var error: String?
        }

        struct Answer: Codable {
            var referenceVersion: String?
            var hosts: [HostPolicy]
        }

        func run() throws {
            let client = try fleet.fleet()
            let outcomes = client.send("GET", { _ in "/v1/policy" })
            let versions = outcomes.map { $0.value.flatMap { $0.headers["etag"] }.map(ETag.version) }
            let drift = PolicyDrift(versions: versions, expected: expectVersion)
            let rows = outcomes.indices.map { index in
                HostPolicy(host: outcomes[index].host.name, version: versions[index],
                           name: outcomes[index].value.flatMap { PolicyText.name(of: $0.body) }, drift: drift.flag(index),
                           error: outcomes[index].failure.map { "\($0.kind): \($0)" })
            }
            if fleet.json {
                try Out.json(Answer(referenceVersion: drift.reference, hosts: rows))
            } else {
                var table = Table(["HOST", "VERSION", "NAME", "STATE"])
                for row in rows {
                    table.add([row.host, row.version.map { String($0.prefix(12)) } ?? "-", row.name ?? "-",
                               row.error.map { String($0.prefix { $0 != ":" }) } ?? row.drift.map { $0.uppercased() } ?? "in force"])
                }
                Out.line(table.render())
                let documents = Set(outcomes.compactMap { $0.value?.body })
                if documents.count == 1, let document = documents.first, !drift.anyDrift {
                    Out.line("\nevery reachable host has:\n" + String(decoding: document, as: UTF8.self))
                } else if drift.anyDrift {
                    Out.error(drift.reference.map { "hosts not on version \($0.prefix(12)) are marked DRIFT" }
                              ?? "no version is run by more hosts than every other: the fleet is SPLIT")
                }
                Out.failures(outcomes)
            }
            if drift.anyDrift { throw CtlFailure.hostsFailed }
            try Out.finish(outcomes)
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a policy file locally and as a dry run on every host.")
        @OptionGroup var arguments: FileArguments

        func run() throws {
            let fleet = arguments.fleet
            let (document, policy) = try arguments.policy()
            if !fleet.json { Out.line("\(arguments.file): valid locally, version \(policy.version)") }
            let client = try fleet.fleet()
            let outcomes = PolicyPush.dryRun(document, on: client)
            let rows = outcomes.map { outcome in
                guard let validation = outcome.value else { return Row(outcome) }
                return Row(host: outcome.host.name, result: validation.valid ? (validation.changed ? "valid, would change" : "valid, unchanged") : "invalid",
                           detail: validation.valid ? "current \(validation.currentVersion.prefix(12))" : "\(validation.field ?? ""): \(validation.message ?? "")")
            }
            try Row.print(rows, json: fleet.json)
            if rows.contains(where: { $0.result == "invalid" }) || outcomes.contains(where: { $0.failure != nil }) { throw CtlFailure.hostsFailed }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What pushing FILE would change on each host (exit 1 when anything would, as diff).")
        @OptionGroup var arguments: FileArguments

        func run() throws {
            let fleet = arguments.fleet
            let (document, new) = try arguments.policy()
            let client = try fleet.fleet()
            let outcomes = client.send("GET", { _ in "/v1/policy" })
            var rows: [Row] = []
            for outcome in outcomes {
                guard let current = outcome.value else {
                    rows.append(Row(outcome))
                    continue
                }
                let lines = LineDiff.diff(PolicyText.pretty(current.body), PolicyText.pretty(document))
                rows.append(Row(host: outcome.host.name, result: lines.isEmpty ? "unchanged" : "changes",
                                detail: lines.joined(separator: "\n")))
            }
            if fleet.json { try Out.json(["version": new.version] as [String: String]); try Out.json(["hosts": rows]) } else {
                for row in rows {
                    Out.line("== \(row.host): \(row.result)")
                    if !row.detail.isEmpty { Out.line(row.detail) }
                }
            }
            try Out.finish(outcomes)
            if rows.contains(where: { $0.result == "changes" }) { throw CtlFailure.differences }
        }
    }

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate locally, dry-run on every host, then replace with If-Match; one row per host.")
        @Option(help: "Stop before writing once this many hosts failed (1-100000).") var maxFailures: Int?
        @Option(help: "Only replace a policy of this version; hosts with another report a conflict.") var expectVersion: String?
        @OptionGroup var arguments: FileArguments
        var fleet: FleetOptions { arguments.fleet }

        func validate() throws {
            if let maxFailures, !(1...100_000).contains(maxFailures) { throw ValidationError("--max-failures must be from 1 to 100000") }
        }

        func run() throws {
            let document = try arguments.document()
            let client = try fleet.fleet()
            let outcomes = PolicyPush(document: document, expectedVersion: expectVersion, maxFailures: maxFailures).run(client)
            let rows = zip(client.hosts, outcomes).map { Row(host: $0.name, result: $1.word, detail: $1.detail) }
            try Row.print(rows, json: fleet.json)
            if outcomes.contains(where: \.isFailure) { throw CtlFailure.hostsFailed }
        }
    }
}

/// Policy documents as sorted, indented JSON for diffs.
enum PolicyText {
    /// The `name` of a policy document, if it is strict JSON and has one.
    static func name(of document: [UInt8]) -> String? {
        guard let value = try? StrictJSON.parse(document), case .string(let name)? = value["name"] else { return nil }
        return name
    }

    static func pretty(_ bytes: [UInt8]) -> [String] {
        // Not strict JSON (a host running an older agent may hold such a document): its lines as they are.
        guard let document = try? StrictJSON.parse(bytes) else { return String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n") }
        return document.pretty().components(separatedBy: "\n")
    }
}
