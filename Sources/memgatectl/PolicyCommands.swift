import APITypes
import ArgumentParser
import Controller
import Foundation
import JSON
import MemoryModel

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Show, validate, diff, replay and push the conversion policy across hosts.",
        subcommands: [Show.self, Validate.self, Diff.self, Replay.self, Push.self, Rollout.self])

    /// Which recorded requests a replay decides again.
    struct ReplayOptions: ParsableArguments {
        /// Which requests: one VM's (of one host), and when they were made.
        @OptionGroup var window: WindowOptions
        @Option(help: "Requests decided differently to show per host (0-1000).")
        var samples: Int = 5

        func validate() throws {
            guard (0...1000).contains(samples) else { throw ValidationError("--samples must be from 0 to 1000") }
        }

        func path() throws -> String {
            let (since, until) = try window.resolved(now: TimeFlag.nowNanos())
            return PolicyReplayRun.path(since: since, until: until, vm: window.vm, samples: samples)
        }
    }

    /// `policy replay`'s answer, and the replay part of `policy push --json`.
    struct ReplayAnswer: Codable {
        struct HostReport: Codable {
            var host: String
            var report: PolicyReplayReport?
            var error: String?
        }
        var hosts: [HostReport]
        var total: PolicyReplayRun.Totals

        init(_ outcomes: [HostOutcome<PolicyReplayReport>]) {
            hosts = outcomes.map {
                HostReport(host: $0.host.name, report: $0.value, error: $0.failure.map { "\($0.kind): \($0)" })
            }
            total = PolicyReplayRun.Totals(outcomes.compactMap(\.value))
        }

        func printTable() {
            var table = Table(["HOST", "REQUESTS", "ALLOWED→DENIED", "DENIED→ALLOWED", "UNRECORDED", "DETAIL"])
            for host in hosts {
                guard let report = host.report else {
                    table.add([host.host, "-", "-", "-", "-", host.error ?? "no answer"])
                    continue
                }
                let denied = report.transitions.first { $0.from == "denied" && $0.to == "allowed" }?.count ?? 0
                let first =
                    report.samples.first.map { "e.g. event \($0.eventId) (vm \($0.vmId)): \($0.candidate.reason)" }
                    ?? ""
                table.add([
                    host.host, "\(report.requests)", "\(report.allowedToDenied)", "\(denied)",
                    "\(report.unrecordedDenials)", first,
                ])
            }
            table.add([
                "TOTAL", "\(total.requests)", "\(total.allowedToDenied)", "\(total.deniedToAllowed)",
                "\(total.unrecordedDenials)",
                "\(total.hosts) of \(hosts.count) hosts answered",
            ])
            Out.line(table.render())
        }
    }

    /// The fleet and the policy file every command but `show` takes.
    struct FileArguments: ParsableArguments {
        @OptionGroup var fleet: FleetOptions
        @Argument(help: "The policy document (JSON).") var file: String

        func document() throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CtlFailure.usage("cannot read \(file)")
            }
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
            self.init(
                host: outcome.host.name, result: outcome.failure?.kind ?? "error",
                detail: outcome.failure.map { "\($0)" } ?? "")
        }

        init(host: String, result: String, detail: String) {
            self.host = host
            self.result = result
            self.detail = detail
        }

        /// Every row as JSON; as a table, every row in a small fleet, else the failed ones and a summary.
        static func print(
            _ rows: [Row], format: OutputFormat, everyRow: Bool = true,
            ok: Set<String> = ["valid", "same", "applied", "unchanged"]
        ) throws {
            if format.isStructured { return try Out.json(["hosts": rows], as: format) }
            var table = Table(["HOST", "RESULT", "DETAIL"])
            for row in rows where everyRow || !ok.contains(row.result) {
                table.add([row.host, row.result, row.detail])
            }
            if everyRow || !table.rows.isEmpty { Out.line(table.render()) }
            if !everyRow { Out.line(Summary.line(rows.map(\.result))) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Every host's policy version and name, hosts off the fleet's version flagged (exit 1), and the document when all agree."
        )
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
            let outcomes = client.send("GET", { _ in APIRoute.policy.path() })
            let versions = outcomes.map { $0.value.flatMap { $0.headers["etag"] }.map(ETag.version) }
            let drift = PolicyDrift(versions: versions, expected: expectVersion)
            let rows = outcomes.indices.map { index in
                HostPolicy(
                    host: outcomes[index].host.name, version: versions[index],
                    name: outcomes[index].value.flatMap { PolicyText.name(of: $0.body) }, drift: drift.flag(index),
                    error: outcomes[index].failure.map { "\($0.kind): \($0)" })
            }
            if fleet.json {
                try Out.json(Answer(referenceVersion: drift.reference, hosts: rows), as: fleet.format)
            } else {
                var table = Table(["HOST", "VERSION", "NAME", "STATE"])
                for row in rows {
                    table.add([
                        row.host, row.version.map { String($0.prefix(12)) } ?? "-", row.name ?? "-",
                        row.error.map { String($0.prefix { $0 != ":" }) } ?? row.drift.map { $0.uppercased() }
                            ?? "in force",
                    ])
                }
                Out.line(table.render())
                let documents = Set(outcomes.compactMap { $0.value?.body })
                if documents.count == 1, let document = documents.first, !drift.anyDrift {
                    Out.line("\nevery reachable host has:\n" + String(decoding: document, as: UTF8.self))
                } else if drift.anyDrift {
                    Out.error(
                        drift.reference.map { "hosts not on version \($0.prefix(12)) are marked DRIFT" }
                            ?? "no version is run by more hosts than every other: the fleet is SPLIT")
                }
                Out.failures(outcomes)
            }
            if drift.anyDrift { throw CtlFailure.hostsFailed }
            try Out.finish(outcomes)
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy file locally and as a dry run on every host.")
        @OptionGroup var arguments: FileArguments

        func run() throws {
            let fleet = arguments.fleet
            let (document, policy) = try arguments.policy()
            if !fleet.json { Out.line("\(arguments.file): valid locally, version \(policy.version)") }
            let client = try fleet.fleet()
            let outcomes = PolicyPush.dryRun(document, on: client)
            let rows = outcomes.map { outcome in
                guard let validation = outcome.value else { return Row(outcome) }
                return Row(
                    host: outcome.host.name,
                    result: validation.valid
                        ? (validation.changed ? "valid, would change" : "valid, unchanged") : "invalid",
                    detail: validation.valid
                        ? "current \(validation.currentVersion.prefix(12))"
                        : "\(validation.field ?? ""): \(validation.message ?? "")")
            }
            try Row.print(rows, format: fleet.format)
            if rows.contains(where: { $0.result == "invalid" }) || outcomes.contains(where: { $0.failure != nil }) {
                throw CtlFailure.hostsFailed
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What pushing FILE would change on each host (exit 1 when anything would, as diff).")
        @OptionGroup var arguments: FileArguments

        func run() throws {
            let fleet = arguments.fleet
            let (document, new) = try arguments.policy()
            let client = try fleet.fleet()
            let outcomes = client.send("GET", { _ in APIRoute.policy.path() })
            var rows: [Row] = []
            for outcome in outcomes {
                guard let current = outcome.value else {
                    rows.append(Row(outcome))
                    continue
                }
                let lines = LineDiff.diff(PolicyText.pretty(current.body), PolicyText.pretty(document))
                rows.append(
                    Row(
                        host: outcome.host.name, result: lines.isEmpty ? "unchanged" : "changes",
                        detail: lines.joined(separator: "\n")))
            }
            if fleet.json {
                try Out.json(["version": new.version] as [String: String], as: fleet.format)
                try Out.json(["hosts": rows], as: fleet.format)
            } else {
                // One diff per distinct current document, with the hosts that have it, the most common first; then the failures.
                let answered = rows.filter { $0.result == "changes" || $0.result == "unchanged" }
                let groups = Dictionary(grouping: answered, by: \.detail).values
                    .sorted {
                        $0.count != $1.count ? $0.count > $1.count : ($0.first?.host ?? "") < ($1.first?.host ?? "")
                    }
                for group in groups {
                    let hosts = group.map(\.host)
                    Out.line(
                        "== \(counted(hosts.count, "host")) (\(hosts.joined(separator: ", "))): \(group.first?.result ?? "")"
                    )
                    if let detail = group.first?.detail, !detail.isEmpty { Out.line(detail) }
                }
                for row in rows where row.result != "changes" && row.result != "unchanged" {
                    Out.line("== \(row.host): \(row.result) \(row.detail)")
                }
            }
            try Out.finish(outcomes)
            if rows.contains(where: { $0.result == "changes" }) { throw CtlFailure.differences }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "What FILE would have decided for the conversion requests every host recorded (changes nothing); per host and total."
        )
        @OptionGroup var replay: ReplayOptions
        @OptionGroup var arguments: FileArguments

        func run() throws {
            let fleet = arguments.fleet
            let (document, policy) = try arguments.policy()
            let client = try fleet.fleet()
            try replay.window.requireOneHost(client.hosts)
            let outcomes = PolicyReplayRun.run(document, on: client, path: try replay.path())
            let answer = ReplayAnswer(outcomes)
            if fleet.json {
                try Out.json(answer, as: fleet.format)
            } else {
                Out.line("candidate \(policy.version.prefix(12)): \(answer.total.summary)")
                answer.printTable()
            }
            if outcomes.contains(where: { $0.failure != nil }) { throw CtlFailure.hostsFailed }
        }
    }

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate locally, dry-run on every host, then replace with If-Match; one row per host.")
        @Option(help: "Stop before writing once this many hosts failed (1-100000).") var maxFailures: Int?
        @Option(help: "Only replace a policy of this version; hosts with another report a conflict.") var expectVersion:
            String?
        @Flag(
            help:
                "Push nowhere if the replay finds a recorded request the policy allowed that this one would deny (or a host cannot replay)."
        )
        var ifReplayClean = false
        @OptionGroup var arguments: FileArguments
        var fleet: FleetOptions { arguments.fleet }

        func validate() throws {
            if let maxFailures, !(1...100_000).contains(maxFailures) {
                throw ValidationError("--max-failures must be from 1 to 100000")
            }
        }

        func run() throws {
            // An invalid document is one local error, said once; no host is asked.
            let (document, _) = try arguments.policy()
            // One deadline for the whole push: the replay and the write share it, each host getting what is left.
            let client = try fleet.fleet().within(seconds: fleet.deadline)
            let push = PolicyPush(document: document, expectedVersion: expectVersion, maxFailures: maxFailures)
            let outcomes: [PushOutcome]
            if ifReplayClean || maxFailures != nil {
                // Both need every host's replay (or dry run) before anything is written.
                let replayed = PolicyReplayRun.run(document, on: client)
                try reportReplay(replayed, stopIfUnclean: ifReplayClean)
                outcomes = push.run(client, dryRun: PolicyPush.dryRun(from: replayed))
            } else {
                // Each host on its own: its replay (its dry run too), then at once its write.
                let (replayed, pushed) = push.runPipelined(client, replayPath: PolicyReplayRun.path())
                try reportReplay(replayed, stopIfUnclean: false)
                outcomes = pushed
            }
            let rows = zip(client.hosts, outcomes).map { Row(host: $0.name, result: $1.word, detail: $1.detail) }
            try Row.print(rows, format: fleet.format, everyRow: fleet.everyRow(hosts: rows.count))
            if outcomes.contains(where: \.isFailure) { throw CtlFailure.hostsFailed }
        }

        /// What the new policy would have done to what already ran; with `stopIfUnclean`, nothing is pushed when it would deny.
        func reportReplay(_ outcomes: [HostOutcome<PolicyReplayReport>], stopIfUnclean: Bool) throws {
            let replay = ReplayAnswer(outcomes)
            let unanswered = replay.hosts.filter { $0.report == nil }.map(\.host)
            Out.error(
                "replay: \(replay.total.summary)"
                    + (unanswered.isEmpty ? "" : "; no replay from \(unanswered.joined(separator: ", "))"))
            if stopIfUnclean, replay.total.allowedToDenied > 0 || !unanswered.isEmpty {
                if fleet.json { try Out.json(["replay": replay], as: fleet.format) }
                throw CtlFailure.failed(
                    replay.total.allowedToDenied > 0
                        ? "not pushed: \(replay.total.allowedToDenied) recorded requests the policy allowed would be denied (see memgatectl policy replay)"
                        : "not pushed: \(unanswered.count) hosts could not replay the policy, so --if-replay-clean cannot vouch for them"
                )
            }
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
        guard let document = try? StrictJSON.parse(bytes) else {
            return String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n")
        }
        return document.pretty().components(separatedBy: "\n")
    }
}
