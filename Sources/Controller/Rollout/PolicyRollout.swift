import APITypes
import Foundation
import MemoryModel
import Synchronization

/// What a rollout tells whoever shows its progress.
public enum RolloutUpdate: Sendable {
    case started(id: Int64, waves: [Int])
    case pushing(wave: Int, hosts: Int)
    case pushed(wave: Int, applied: Int, unchanged: Int, unreachable: Int)
    /// Once a second during a bake.
    case baking(wave: Int, secondsLeft: Double, events: Int, denials: Int, faulted: Int, down: Int)
    case breached(wave: Int, BakeBreach)
    case rollingBack(hosts: Int)
    case finished(RolloutReport)
}

/// How a rollout (or its rollback) ended, host by host.
public struct RolloutReport: Sendable, Equatable {
    public var id: Int64
    public var state: RolloutRecord.State
    public var outcome: String
    public var breach: BakeBreach?
    public var hosts: [RolloutHostRecord]

    /// Hosts by what became of them.
    public var counts: [String: Int] { Dictionary(grouping: hosts, by: \.state.rawValue).mapValues(\.count) }
}

public struct RolloutError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `memgatectl policy rollout`: pushes a candidate policy in waves, watches each wave's
/// hosts through their event streams for the bake, and on a breach rolls back every host
/// it changed to the exact document each had, with `If-Match` on the version it wrote (a
/// host someone changed since is left alone and reported). Every step is written to the
/// state file first, so a controller killed anywhere can `resume` or `rollback`.
public final class PolicyRollout {
    let fleet: FleetClient
    let streamOptions: TransportOptions
    let store: RolloutStateStore
    let report: @Sendable (RolloutUpdate) -> Void
    /// Wall-clock nanoseconds since the epoch (the caller's clock: `MonotonicClock.wallNanos` in memgatectl).
    private let clock: @Sendable () -> UInt64

    public init(
        fleet: FleetClient, streamOptions: TransportOptions, store: RolloutStateStore,
        clock: @escaping @Sendable () -> UInt64,
        report: @escaping @Sendable (RolloutUpdate) -> Void
    ) {
        self.fleet = fleet
        self.streamOptions = streamOptions
        self.store = store
        self.clock = clock
        self.report = report
    }

    /// Plans and runs a new rollout of `document` over the fleet's hosts.
    public func start(document: [UInt8], plan: RolloutPlan, settings: RolloutSettings) throws(RolloutError)
        -> RolloutReport
    {
        let candidate: VersionedPolicy
        do {
            candidate = try VersionedPolicy(document: document)
        } catch {
            throw RolloutError("the candidate is invalid: \(error)")
        }
        let id = try state { () throws(RolloutStateError) in
            try store.begin(
                candidate: document, version: candidate.version, plan: plan, settings: settings, hosts: fleet.hosts,
                atNanos: clock())
        }
        report(.started(id: id, waves: plan.waves.map(\.count)))
        return try proceed(id)
    }

    /// Goes on with a rollout a controller left running (the newest one without `id`), with
    /// its own bake unless `bakeSeconds` says otherwise from here on.
    public func resume(_ id: Int64?, bakeSeconds: Double? = nil) throws(RolloutError) -> RolloutReport {
        let rollout = try record(id)
        guard rollout.state == .running else {
            throw RolloutError(
                "rollout \(rollout.id) already ended (\(rollout.state.rawValue)): \(rollout.outcome ?? "")")
        }
        report(.started(id: rollout.id, waves: rollout.plan.waves.map(\.count)))
        return try proceed(rollout.id, bakeSeconds: bakeSeconds)
    }

    /// Restores every host a rollout changed (the newest one without `id`), whatever its state.
    public func rollback(_ id: Int64?) throws(RolloutError) -> RolloutReport {
        let rollout = try record(id)
        let restored = try restore(rollout)
        let ending: RolloutRecord.State = restored.failed == 0 ? .rolledBack : .rollbackIncomplete
        let outcome = "rolled back on request: \(restored.summary)"
        try state { () throws(RolloutStateError) in try store.finish(rollout.id, state: ending, outcome: outcome) }
        return try finished(rollout.id, breach: nil)
    }

    // MARK: The waves

    private func proceed(_ id: Int64, bakeSeconds: Double? = nil) throws(RolloutError) -> RolloutReport {
        let rollout = try record(id)
        let limits = rollout.settings.limits
        let bakeLength = bakeSeconds ?? rollout.settings.bakeSeconds
        for wave in rollout.wave..<rollout.plan.waves.count {
            var bakeStarted = wave == rollout.wave ? rollout.bakeStartedNanos : nil
            if wave != rollout.wave || rollout.phase == .push {
                try state { () throws(RolloutStateError) in try store.step(id, wave: wave, phase: .push) }
                if let breach = try push(
                    id, wave: wave, candidate: rollout.candidate, version: rollout.candidateVersion)
                {
                    return try breached(id, wave: wave, breach)
                }
                bakeStarted = clock()
                try state { () throws(RolloutStateError) in
                    try store.step(id, wave: wave, phase: .bake, bakeStartedNanos: bakeStarted)
                }
            }
            // A bake resumed late still reads every event since the push (they are durable), for at least 2 s.
            let elapsed = Double(clock() &- (bakeStarted ?? clock())) / 1e9
            let seconds = max(bakeLength - elapsed, min(bakeLength, 2))
            if let breach = try bake(
                id, wave: wave, seconds: seconds, candidateVersion: rollout.candidateVersion, limits: limits)
            {
                return try breached(id, wave: wave, breach)
            }
        }
        let hosts = try hostRecords(id)
        let outcome =
            "every wave passed its bake: \(hosts.filter { $0.state == .pushed }.count) hosts changed, "
            + "\(hosts.filter { $0.state == .unchanged }.count) already had the candidate"
        try state { () throws(RolloutStateError) in try store.finish(id, state: .completed, outcome: outcome) }
        return try finished(id, breach: nil)
    }

    /// Reads each wave host's policy (the exact document and its version) and newest event id,
    /// then writes the candidate with `If-Match` on that version. A host that cannot be reached
    /// counts against `--max-unreachable`; a host that refuses is a breach of its own.
    private func push(_ id: Int64, wave: Int, candidate: [UInt8], version: String) throws(RolloutError) -> BakeBreach? {
        var records = try hostRecords(id).filter { $0.wave == wave && $0.state == .pending }
        report(.pushing(wave: wave, hosts: records.count))
        let indices = records.map(\.host)
        let policies = fleet.send("GET", { _ in APIRoute.policy.path() }, to: indices)
        let heads = fleet.send("GET", { _ in APIRoute.events.path(query: "from=end") }, to: indices).map {
            FleetClient.decode($0, as: EventPage.self)
        }
        var unreachable: [BakeEvidence] = []
        var refused: [BakeEvidence] = []
        for position in records.indices {
            switch (policies[position].result, heads[position].result) {
            case (.success(let policy), .success(let head)):
                records[position].oldDocument = policy.body
                records[position].oldVersion = policy.headers["etag"].map(ETag.version)
                records[position].afterEvent = head.nextAfter
            case (.failure(let failure), _), (_, .failure(let failure)):
                records[position].state = .failed
                records[position].detail = "\(failure)"
                let evidence = BakeEvidence(
                    host: records[position].host, eventID: nil, what: "\(records[position].name): \(failure)")
                if case .transport = failure { unreachable.append(evidence) } else { refused.append(evidence) }
            }
        }
        try state { () throws(RolloutStateError) in try store.update(id, hosts: records) }
        // A wave that is already over a limit is not written to at all.
        if let breach = try pushBreach(id, refused: refused, unreachable: unreachable) {
            report(.pushed(wave: wave, applied: 0, unchanged: 0, unreachable: unreachable.count))
            return breach
        }
        let ready = records.indices.filter { records[$0].state == .pending }
        let oldVersions = Dictionary(
            records.map { ($0.host, $0.oldVersion ?? "") }, uniquingKeysWith: { first, _ in first })
        let writes = fleet.send(
            "PUT", { _ in APIRoute.policy.path() }, to: ready.map { records[$0].host },
            headers: { host in
                ["If-Match": ETag.quoted(oldVersions[host] ?? ""), "MemGate-Change": "rollout \(id) wave \(wave)"]
            },
            body: candidate)
        for (position, outcome) in zip(ready, writes) {
            switch FleetClient.decode(outcome, as: PolicyApplied.self).result {
            case .success(let applied):
                records[position].state = applied.changed ? .pushed : .unchanged
                records[position].newVersion = applied.version
            case .failure(let failure):
                records[position].state = .failed
                records[position].detail = "\(failure)"
                let evidence = BakeEvidence(
                    host: records[position].host, eventID: nil, what: "\(records[position].name): \(failure)")
                if case .transport = failure { unreachable.append(evidence) } else { refused.append(evidence) }
            }
        }
        try state { () throws(RolloutStateError) in try store.update(id, hosts: records) }
        report(
            .pushed(
                wave: wave, applied: records.filter { $0.state == .pushed }.count,
                unchanged: records.filter { $0.state == .unchanged }.count, unreachable: unreachable.count))
        return try pushBreach(id, refused: refused, unreachable: unreachable)
    }

    /// A host that refused (a conflict, a rejected document, a refused token) stops the rollout;
    /// hosts that could not be reached count against `--max-unreachable`.
    private func pushBreach(_ id: Int64, refused: [BakeEvidence], unreachable: [BakeEvidence]) throws(RolloutError)
        -> BakeBreach?
    {
        if !refused.isEmpty {
            return BakeBreach(
                kind: "refused pushes", count: refused.count, limit: 0, evidence: Array(refused.prefix(5)))
        }
        let limit = (try record(id)).settings.limits.maxUnreachable
        if unreachable.count > limit {
            return BakeBreach(
                kind: "unreachable hosts", count: unreachable.count, limit: limit,
                evidence: Array(unreachable.prefix(5)))
        }
        return nil
    }

    /// Follows the wave's hosts' streams from their pushes on for `seconds` (or until a limit is passed).
    private func bake(
        _ id: Int64, wave: Int, seconds: Double, candidateVersion: String,
        limits: BakeLimits
    ) throws(RolloutError) -> BakeBreach? {
        let members = try hostRecords(id).filter { $0.wave == wave && ($0.state == .pushed || $0.state == .unchanged) }
        guard !members.isEmpty else { return nil }
        let follower: CurlEventFollower
        do {
            follower = try CurlEventFollower(
                endpoints: members.compactMap { Endpoint($0.url) }, options: streamOptions,
                path: APIRoute.eventStream.path(query: "kind=conversion,vm_ended"), silenceSeconds: max(Int(seconds), 5)
            )
        } catch {
            throw RolloutError("cannot follow the wave's hosts: \(error)")
        }
        let shared = SharedTally(BakeTally(candidateVersion: candidateVersion))
        // Every host counts as down until its stream is open.
        shared.tally.withLock { tally in
            for member in members { tally.lost(host: member.host, reason: "its event stream never opened") }
        }
        let deadline = Date(timeIntervalSinceNow: seconds)
        let ticker = Thread { [report] in
            while !Thread.current.isCancelled {
                let left = deadline.timeIntervalSinceNow
                if left <= 0 { break }
                let snapshot = shared.tally.withLock { $0 }
                report(
                    .baking(
                        wave: wave, secondsLeft: left, events: snapshot.events, denials: snapshot.denials.count,
                        faulted: snapshot.faulted.count, down: snapshot.down.count))
                Thread.sleep(forTimeInterval: min(1, left))
            }
            follower.stop()
        }
        ticker.start()
        _ = follower.follow(startAfter: members.map(\.afterEvent)) { update in
            let breach = shared.tally.withLock { tally -> BakeBreach? in
                switch update {
                case .event(let host, let event):
                    tally.record(host: members[host].host, eventID: event.id, type: event.type, data: event.data)
                case .connected(let host): tally.regained(host: members[host].host)
                case .disconnected(let host, let reason, _):
                    tally.disconnected(host: members[host].host, reason: reason)
                }
                // Denials and faulted VMs end the bake at once; a host down is judged at its end.
                var early = limits
                early.maxUnreachable = Int.max
                return tally.breach(early)
            }
            if breach != nil { follower.stop() }
        }
        ticker.cancel()
        var tally = shared.tally.withLock { $0 }
        if let early = tally.breach(
            {
                var early = limits
                early.maxUnreachable = Int.max
                return early
            }())
        {
            return early
        }
        // Whether each host still answers decides whether it counts as unreachable (a cut link
        // leaves a stream silent, not closed, for longer than a short bake).
        let probes = fleet.send("GET", { _ in APIRoute.healthz.path() }, to: members.map(\.host))
        for (member, probe) in zip(members, probes) {
            if case .failure(.transport(let error)) = probe.result {
                tally.settle(host: member.host, answers: false, reason: "\(error)")
            } else {
                tally.settle(host: member.host, answers: true, reason: "")
            }
        }
        return tally.breach(limits)
    }

    private func breached(_ id: Int64, wave: Int, _ breach: BakeBreach) throws(RolloutError) -> RolloutReport {
        report(.breached(wave: wave, breach))
        try state { () throws(RolloutStateError) in try store.addEvidence(id, wave: wave, breach: breach) }
        let rollout = try record(id)
        let restored = try restore(rollout)
        let hosts = try hostRecords(id)
        let names = Set(breach.evidence.map(\.host)).sorted().compactMap { host in hosts.first { $0.host == host }?.name
        }
        let outcome =
            "wave \(wave): \(breach.count) \(breach.kind) (limit \(breach.limit)) on \(names.joined(separator: ", ")): "
            + breach.evidence.map(\.description).joined(separator: "; ") + "; rolled back: \(restored.summary)"
        try state { () throws(RolloutStateError) in
            try store.finish(id, state: restored.failed == 0 ? .breached : .rollbackIncomplete, outcome: outcome)
        }
        return try finished(id, breach: breach)
    }

    // MARK: The rollback

    private struct Restored {
        var restored = 0, changedSince = 0, failed = 0
        var summary: String {
            "\(restored) hosts restored, \(changedSince) changed by someone else since (left alone), \(failed) failed"
        }
    }

    /// Writes each changed host's old document back with `If-Match` on the version the rollout wrote.
    private func restore(_ rollout: RolloutRecord) throws(RolloutError) -> Restored {
        var records = try hostRecords(rollout.id).filter {
            ($0.state == .pushed || $0.state == .rollbackFailed) && $0.oldDocument != nil
        }
        report(.rollingBack(hosts: records.count))
        var restored = Restored()
        let written = Dictionary(
            records.map { ($0.host, $0.newVersion ?? "") }, uniquingKeysWith: { first, _ in first })
        // One request per host, each with its own document: grouped by document so hosts that had the same share a request batch.
        for (document, group) in Dictionary(grouping: records.indices, by: { records[$0].oldDocument ?? [] }) {
            let outcomes = fleet.send(
                "PUT", { _ in APIRoute.policy.path() }, to: group.map { records[$0].host },
                headers: { host in
                    [
                        "If-Match": ETag.quoted(written[host] ?? ""),
                        "MemGate-Change": "rollback of rollout \(rollout.id)",
                    ]
                },
                body: document)
            for (position, outcome) in zip(group, outcomes) {
                switch outcome.result {
                case .success:
                    records[position].state = .rolledBack
                    restored.restored += 1
                case .failure(let failure) where failure.kind == "conflict":
                    records[position].state = .changedSince
                    records[position].detail = "its policy changed after the rollout wrote it; left alone: \(failure)"
                    restored.changedSince += 1
                case .failure(let failure):
                    records[position].state = .rollbackFailed
                    records[position].detail = "\(failure)"
                    restored.failed += 1
                }
            }
        }
        try state { () throws(RolloutStateError) in try store.update(rollout.id, hosts: records) }
        return restored
    }

    // MARK: State

    private func finished(_ id: Int64, breach: BakeBreach?) throws(RolloutError) -> RolloutReport {
        let rollout = try record(id)
        let result = RolloutReport(
            id: id, state: rollout.state, outcome: rollout.outcome ?? "", breach: breach, hosts: try hostRecords(id))
        report(.finished(result))
        return result
    }

    private func record(_ id: Int64?) throws(RolloutError) -> RolloutRecord {
        guard let rollout = try state({ () throws(RolloutStateError) in try store.rollout(id) }) else {
            throw RolloutError(id.map { "no rollout \($0) in \(store.path)" } ?? "no rollout in \(store.path)")
        }
        return rollout
    }

    private func hostRecords(_ id: Int64) throws(RolloutError) -> [RolloutHostRecord] {
        try state { () throws(RolloutStateError) in try store.hosts(id) }
    }

    private func state<T>(_ body: () throws(RolloutStateError) -> T) throws(RolloutError) -> T {
        do throws(RolloutStateError) {
            return try body()
        } catch {
            throw RolloutError(error.message)
        }
    }
}

/// The bake's tally, shared by the stream thread (which counts) and the ticker (which shows it).
private final class SharedTally: Sendable {
    let tally: Mutex<BakeTally>
    init(_ tally: BakeTally) { self.tally = Mutex(tally) }
}
