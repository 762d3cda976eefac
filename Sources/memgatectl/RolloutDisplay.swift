import Controller
import Foundation
import Synchronization

/// How a rollout shows its progress: one line kept up to date on a terminal (stderr), a
/// plain line per step otherwise, one JSON object per step with `--json` (stdout).
final class RolloutDisplay: Sendable {
    private let json: Bool
    /// `-o`: the JSON steps' form (json, yaml, jsonpath).
    private let format: OutputFormat
    private let terminal: Bool
    /// The inventory's names, by host index: every line names hosts as the operator does.
    private let names: [String]
    /// The bake line is shown at most once every 10 s when it cannot be redrawn in place.
    private let lastPlainBake = Mutex<Date>(.distantPast)

    init(format: OutputFormat, terminal: Bool, names: [String]) {
        self.format = format
        self.json = format.isStructured
        self.terminal = terminal
        self.names = names
    }

    /// A host's name (its index when the inventory has none for it).
    private func name(_ host: Int) -> String { names.indices.contains(host) ? names[host] : "host \(host)" }

    /// Evidence naming its host: `a3: event 5: ...`.
    private func named(_ evidence: BakeEvidence) -> String { "\(name(evidence.host)): \(evidence)" }

    /// One step as JSON.
    struct Step: Encodable {
        var event: String
        var rollout: Int64?
        var wave: Int?
        var hosts: Int?
        var waves: [Int]?
        var waveHosts: [[String]]?
        var applied: Int?
        var unchanged: Int?
        var unreachable: Int?
        var secondsLeft: Double?
        var events: Int?
        var denials: Int?
        var faulted: Int?
        var down: Int?
        var breach: String?
        var evidence: [String]?
        var candidate: String?
        var seed: UInt64?
        var replayAllowedToDenied: Int?
        var replayRequests: Int?
        var replay: PolicyCommand.ReplayAnswer?

        init(_ event: String) { self.event = event }
    }

    /// The plan (each wave's hosts by name), and the replay merged over the fleet: every host's with `--dry-run`
    /// (or `--verbose`), else only the total. `seed` is nil when labels, not chance, chose the canary.
    func planned(candidate: String, replay: PolicyCommand.ReplayAnswer, waves: [[Int]], seed: UInt64?, everyHost: Bool)
    {
        let hosts = waves.map { $0.map(name) }
        if json {
            var step = Step("planned")
            step.candidate = candidate
            step.waves = waves.map(\.count)
            step.waveHosts = hosts
            step.seed = seed
            step.replayAllowedToDenied = replay.total.allowedToDenied
            step.replayRequests = replay.total.requests
            if everyHost { step.replay = replay }
            try? Out.jsonLine(step, as: format)
            return
        }
        if everyHost { replay.printTable() }
        Out.error("candidate \(candidate.prefix(12)): replay: \(replay.total.summary)")
        Out.error(
            "plan: \(counted(waves.count, "wave")) of \(waves.map { String($0.count) }.joined(separator: ", ")) hosts"
                + (seed.map { " (canary seed \($0))" } ?? " (canary chosen by --canary-select)"))
        for (index, wave) in hosts.enumerated() {
            // A wave of many hosts is named in part: the table and --json have them all.
            let shown = wave.prefix(8).joined(separator: ", ") + (wave.count > 8 ? ", and \(wave.count - 8) more" : "")
            Out.error("  wave \(index): \(shown)")
        }
    }

    func show(_ update: RolloutUpdate) {
        if json { return showJSON(update) }
        switch update {
        case .started(let id, let waves):
            line("rollout \(id): \(counted(waves.reduce(0, +), "host")) in \(counted(waves.count, "wave"))")
        case .pushing(let wave, let hosts):
            line("wave \(wave): pushing to \(counted(hosts, "host"))")
        case .pushed(let wave, let applied, let unchanged, let unreachable):
            line("wave \(wave): \(applied) changed, \(unchanged) already had it, \(unreachable) unreachable")
        case .baking(let wave, let left, let events, let denials, let faulted, let down):
            // A host's stream opens as the bake starts: one not (or no longer) streaming is said only when there is one.
            let text =
                "wave \(wave): baking, \(Int(left.rounded(.up))) s left; \(counted(events, "event")), \(counted(denials, "new denial")), "
                + "\(counted(faulted, "faulted VM"))"
                + (down > 0 ? ", \(counted(down, "host")) not streaming (connecting, or reconnecting)" : "")
            if terminal {
                FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
            } else if lastPlainBake.withLock({ last in
                defer { if Date().timeIntervalSince(last) >= 10 { last = Date() } }
                return Date().timeIntervalSince(last) >= 10
            }) {
                Out.error(text)
            }
        case .breached(let wave, let breach):
            line("wave \(wave): \(breach.count) \(breach.kind), over the limit of \(breach.limit):")
            for evidence in breach.evidence { line("  \(named(evidence))") }
        case .rollingBack(let hosts):
            line("rolling back \(counted(hosts, "host"))")
        case .finished:
            break
        }
    }

    private func line(_ text: String) {
        Out.error((terminal ? "\r\u{1B}[K" : "") + text)
    }

    private func showJSON(_ update: RolloutUpdate) {
        var step: Step
        switch update {
        case .started(let id, let waves):
            step = Step("started")
            step.rollout = id
            step.waves = waves
        case .pushing(let wave, let hosts):
            step = Step("pushing")
            step.wave = wave
            step.hosts = hosts
        case .pushed(let wave, let applied, let unchanged, let unreachable):
            step = Step("pushed")
            step.wave = wave
            step.applied = applied
            step.unchanged = unchanged
            step.unreachable = unreachable
        case .baking(let wave, let left, let events, let denials, let faulted, let down):
            step = Step("baking")
            step.wave = wave
            step.secondsLeft = (left * 10).rounded() / 10
            step.events = events
            step.denials = denials
            step.faulted = faulted
            step.down = down
        case .breached(let wave, let breach):
            step = Step("breached")
            step.wave = wave
            step.breach = breach.kind
            step.evidence = breach.evidence.map(named)
        case .rollingBack(let hosts):
            step = Step("rolling_back")
            step.hosts = hosts
        case .finished:
            return
        }
        try? Out.jsonLine(step, as: format)
    }

    /// The end: counts of hosts by what became of them, and each host with --verbose (always
    /// those that failed or were left alone).
    func summary(_ result: RolloutReport, verbose: Bool) throws {
        struct Host: Encodable {
            var host: String
            var wave: Int
            var state: String
            var detail: String?
        }
        struct Summary: Encodable {
            var event = "finished"
            var rollout: Int64
            var state: String
            var outcome: String
            var hosts: [String: Int]
            var details: [Host]
        }
        let notable = result.hosts.filter { verbose || [.failed, .changedSince, .rollbackFailed].contains($0.state) }
        let details = notable.map { Host(host: $0.name, wave: $0.wave, state: $0.state.rawValue, detail: $0.detail) }
        if json {
            try Out.jsonLine(
                Summary(
                    rollout: result.id, state: result.state.rawValue, outcome: result.outcome, hosts: result.counts,
                    details: details), as: format)
            return
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        Out.line("rollout \(result.id) \(result.state.rawValue): \(result.outcome)")
        Out.line(result.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        for host in details {
            Out.line("  \(host.host) (wave \(host.wave)): \(host.state)\(host.detail.map { ": \($0)" } ?? "")")
        }
    }
}
