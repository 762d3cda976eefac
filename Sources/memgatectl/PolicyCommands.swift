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
        static let configuration = CommandConfiguration(abstract: "Every host's policy version (and the document, when they agree).")
        @OptionGroup var fleet: FleetOptions

        func run() throws {
            let client = try fleet.fleet()
            let outcomes = client.send("GET", { _ in "/v1/policy" })
            let versions = outcomes.map { $0.value.flatMap { $0.headers["etag"] }.map(ETag.version) }
            if fleet.json {
                try Out.json(["hosts": zip(outcomes, versions).map { Row(host: $0.host.name, result: $1 ?? "-", detail: $0.failure.map { "\($0)" } ?? "") }])
            } else {
                var table = Table(["HOST", "VERSION"])
                for (outcome, version) in zip(outcomes, versions) { table.add([outcome.host.name, version ?? (outcome.failure?.kind ?? "-")]) }
                Out.line(table.render())
                let documents = Set(outcomes.compactMap { $0.value?.body })
                if documents.count == 1, let document = documents.first {
                    Out.line("\nevery reachable host has:\n" + String(decoding: document, as: UTF8.self))
                }
                Out.failures(outcomes)
            }
            try Out.finish(outcomes)
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a policy file locally and as a dry run on every host.")
        @OptionGroup var arguments: FileArguments
        var fleet: FleetOptions { arguments.fleet }

        func run() throws {
            let document = try arguments.document()
            let file = arguments.file
            do {
                let policy = try VersionedPolicy(document: document)
                if !fleet.json { Out.line("\(file): valid locally, version \(policy.version)") }
            } catch {
                throw CtlFailure.failed("\(file): invalid: \(error)")
            }
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
        static let configuration = CommandConfiguration(abstract: "What pushing FILE would change on each host.")
        @OptionGroup var arguments: FileArguments
        var fleet: FleetOptions { arguments.fleet }

        func run() throws {
            let document = try arguments.document()
            let new = try VersionedPolicy(document: document)
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
        }
    }

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate locally, dry-run on every host, then replace with If-Match; one row per host.")
        @OptionGroup var arguments: FileArguments
        var fleet: FleetOptions { arguments.fleet }
        @Option(help: "Stop before writing once this many hosts failed (1-100000).") var maxFailures: Int?
        @Option(help: "Only replace a policy of this version; hosts with another report a conflict.") var expectVersion: String?

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
    static func pretty(_ bytes: [UInt8]) -> [String] {
        // Not strict JSON (a host running an older agent may hold such a document): its lines as they are.
        guard let document = try? StrictJSON.parse(bytes) else { return String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n") }
        return document.pretty().components(separatedBy: "\n")
    }
}
