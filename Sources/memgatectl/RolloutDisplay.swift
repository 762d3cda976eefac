import Controller
import Foundation
import Synchronization

/// How a rollout shows its progress: one line kept up to date on a terminal (stderr), a
/// plain line per step otherwise, one JSON object per step with `--json` (stdout).
final class RolloutDisplay: Sendable {
    private let json: Bool
    private let terminal: Bool
    /// The bake line is shown at most once every 10 s when it cannot be redrawn in place.
    private let lastPlainBake = Mutex<Date>(.distantPast)

    init(json: Bool, terminal: Bool) {
        self.json = json
        self.terminal = terminal
    }

    /// One step as JSON.
    struct Step: Encodable {
        var event: String
        var rollout: Int64?
        var wave: Int?
        var hosts: Int?
        var waves: [Int]?
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

        enum CodingKeys: String, CodingKey {
            case event, rollout, wave, hosts, waves, applied, unchanged, unreachable, events, denials, faulted, down, breach, evidence,
                 candidate, seed, replay
            case secondsLeft = "seconds_left"
            case replayAllowedToDenied = "replay_allowed_to_denied"
            case replayRequests = "replay_requests"
        }
    }

    /// The plan, and the replay merged over the fleet: every host's with `--dry-run` (or
    /// `--verbose`), else only the total.
    func planned(candidate: String, replay: PolicyCommand.ReplayAnswer, waves: [Int], seed: UInt64, everyHost: Bool) {
        if json {
            var step = Step("planned")
            step.candidate = candidate; step.waves = waves; step.seed = seed
            step.replayAllowedToDenied = replay.total.allowedToDenied; step.replayRequests = replay.total.requests
            if everyHost { step.replay = replay }
            try? Out.jsonLine(step)
            return
        }
        if everyHost { replay.printTable() }
        Out.error("candidate \(candidate.prefix(12)): replay: \(replay.total.summary)")
        Out.error("plan: \(waves.count) waves of \(waves.map(String.init).joined(separator: ", ")) hosts (canary seed \(seed))")
    }

    func show(_ update: RolloutUpdate) {
        if json { return showJSON(update) }
        switch update {
        case .started(let id, let waves):
            line("rollout \(id): \(waves.reduce(0, +)) hosts in \(waves.count) waves")
        case .pushing(let wave, let hosts):
            line("wave \(wave): pushing to \(hosts) hosts")
        case .pushed(let wave, let applied, let unchanged, let unreachable):
            line("wave \(wave): \(applied) changed, \(unchanged) already had it, \(unreachable) unreachable")
        case .baking(let wave, let left, let events, let denials, let faulted, let down):
            let text = "wave \(wave): baking, \(Int(left.rounded(.up))) s left; \(events) events, \(denials) new denials, "
                + "\(faulted) faulted VMs, \(down) hosts without a stream"
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
            for evidence in breach.evidence { line("  host \(evidence.host): \(evidence)") }
        case .rollingBack(let hosts):
            line("rolling back \(hosts) hosts")
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
            step = Step("started"); step.rollout = id; step.waves = waves
        case .pushing(let wave, let hosts):
            step = Step("pushing"); step.wave = wave; step.hosts = hosts
        case .pushed(let wave, let applied, let unchanged, let unreachable):
            step = Step("pushed"); step.wave = wave; step.applied = applied; step.unchanged = unchanged; step.unreachable = unreachable
        case .baking(let wave, let left, let events, let denials, let faulted, let down):
            step = Step("baking"); step.wave = wave; step.secondsLeft = (left * 10).rounded() / 10; step.events = events
            step.denials = denials; step.faulted = faulted; step.down = down
        case .breached(let wave, let breach):
            step = Step("breached"); step.wave = wave; step.breach = breach.kind; step.evidence = breach.evidence.map(\.description)
        case .rollingBack(let hosts):
            step = Step("rolling_back"); step.hosts = hosts
        case .finished:
            return
        }
        try? Out.jsonLine(step)
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
            try Out.jsonLine(Summary(rollout: result.id, state: result.state.rawValue, outcome: result.outcome, hosts: result.counts,
                                     details: details))
            return
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        Out.line("rollout \(result.id) \(result.state.rawValue): \(result.outcome)")
        Out.line(result.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        for host in details { Out.line("  \(host.host) (wave \(host.wave)): \(host.state)\(host.detail.map { ": \($0)" } ?? "")") }
    }
}
