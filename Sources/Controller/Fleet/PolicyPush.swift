import APITypes
import Foundation
import MemoryModel

/// What a policy push did on one host.
public enum PushOutcome: Sendable, Equatable {
    case applied(version: String)
    /// The host already had this policy.
    case unchanged
    /// The host (or local validation) refused the document; nothing changed.
    case rejected(String)
    /// The host's policy changed under us (or was not the expected version): not pushed.
    case conflict(String)
    /// The token may not do this (`unauthorized` for 401, `forbidden` for 403).
    case notAllowed(word: String, String)
    case unreachable(String)
    /// Not attempted: `--max-failures` was reached first.
    case skipped

    public var word: String {
        switch self {
        case .applied: "applied"
        case .unchanged: "unchanged"
        case .rejected: "rejected"
        case .conflict: "conflict"
        case .notAllowed(let word, _): word
        case .unreachable: "unreachable"
        case .skipped: "skipped"
        }
    }

    public var detail: String {
        switch self {
        case .applied(let version): "now \(version.prefix(12))"
        case .unchanged: "already in force"
        case .rejected(let why), .conflict(let why), .unreachable(let why), .notAllowed(_, let why): why
        case .skipped: "not attempted: too many failures"
        }
    }

    public var isFailure: Bool {
        switch self {
        case .applied, .unchanged: false
        default: true
        }
    }
}

/// `memgatectl policy push`: validate locally, dry-run on every host (which also reads
/// its current version), then replace with `If-Match` on that version — so a host either
/// keeps its old policy or has the new one, never part of it, and a change made by
/// someone else in between is a conflict, not overwritten.
public struct PolicyPush: Sendable {
    public let document: [UInt8]
    /// Push only to hosts whose policy is this version; others report a conflict.
    public var expectedVersion: String?
    /// Stop before writing anything once this many hosts have failed.
    public var maxFailures: Int?

    public init(document: [UInt8], expectedVersion: String? = nil, maxFailures: Int? = nil) {
        self.document = document
        self.expectedVersion = expectedVersion
        self.maxFailures = maxFailures
    }

    /// - Parameter dryRun: each host's dry run when the caller already has it (a replay answers it too: one round trip fewer).
    public func run(_ fleet: FleetClient, dryRun known: [HostOutcome<PolicyValidation>]? = nil) -> [PushOutcome] {
        let count = fleet.hosts.count
        let local: VersionedPolicy
        do {
            local = try VersionedPolicy(document: document)
        } catch {
            return Array(repeating: .rejected("invalid locally: \(error)"), count: count)
        }
        var outcomes = [PushOutcome?](repeating: nil, count: count)
        var etags = [String](repeating: "", count: count)

        // 1. The dry run, which also tells each host's current version (the tag the write must match).
        var dryRun = known ?? Self.dryRun(document, on: fleet)
        // A host that answered the replay but could not run it (an agent with --no-record) still gets its dry run.
        let unreplayed = dryRun.indices.filter {
            if case .failure(.api(let status, _, _)) = dryRun[$0].result { status != 422 } else { false }
        }
        if known != nil, !unreplayed.isEmpty {
            for (index, outcome) in zip(unreplayed, Self.dryRun(document, on: fleet, hosts: unreplayed)) {
                dryRun[index] = outcome
            }
        }
        for (index, outcome) in dryRun.enumerated() {
            (outcomes[index], etags[index]) = decide(outcome, local: local)
        }
        var due: [Int]
        let failures = outcomes.compactMap { $0 }.filter(\.isFailure).count
        due = (0..<count).filter { outcomes[$0] == nil }
        if let maxFailures, failures >= maxFailures {
            for index in due { outcomes[index] = .skipped }
            return outcomes.map { $0 ?? .skipped }
        }
        // 2. The write, conditional on the version the dry run saw.
        for (index, outcome) in zip(
            due,
            fleet.send(
                "PUT", { _ in APIRoute.policy.path() }, to: due, headers: { ["If-Match": etags[$0]] },
                body: document))
        {
            outcomes[index] = written(outcome, local: local)
        }
        return outcomes.map { $0 ?? .skipped }
    }

    /// Each host on its own: the replay (which is its dry run too), then at once its write, without waiting for the
    /// other hosts; a host whose agent cannot replay (no store) gets a dry run first. One deadline covers it all.
    /// Without `maxFailures` only: that limit needs every dry run before any write.
    public func runPipelined(_ fleet: FleetClient, replayPath: String) -> (
        replay: [HostOutcome<PolicyReplayReport>], outcomes: [PushOutcome]
    ) {
        let count = fleet.hosts.count
        let local: VersionedPolicy
        do {
            local = try VersionedPolicy(document: document)
        } catch {
            return ([], Array(repeating: .rejected("invalid locally: \(error)"), count: count))
        }
        enum Phase { case replay, validate, write }
        var phases = Array(repeating: Phase.replay, count: count)
        var replays: [HostOutcome<PolicyReplayReport>?] = Array(repeating: nil, count: count)
        var outcomes: [PushOutcome?] = Array(repeating: nil, count: count)
        let document = document
        let answers = fleet.sendChained("POST", { _ in replayPath }, body: document) { index, answer in
            let dryRun: HostOutcome<PolicyValidation>
            switch phases[index] {
            case .replay:
                let replay = FleetClient.decode(answer, as: PolicyReplayReport.self)
                replays[index] = replay
                // An agent that answered but could not replay (no store): its dry run is the validate endpoint.
                if case .failure(.api(let status, _, _)) = replay.result, status != 422 {
                    phases[index] = .validate
                    return ("POST", APIRoute.policyValidate.path(), [:], document)
                }
                dryRun = Self.dryRun(from: [replay])[0]
            case .validate:
                dryRun = FleetClient.decode(answer, as: PolicyValidation.self)
            case .write:
                return nil
            }
            let (decided, etag) = decide(dryRun, local: local)
            if let decided {
                outcomes[index] = decided
                return nil
            }
            phases[index] = .write
            return ("PUT", APIRoute.policy.path(), ["If-Match": etag], document)
        }
        // A host whose chain stopped before its write (no answer in time) failed where it stopped.
        for (index, answer) in answers.enumerated() where outcomes[index] == nil {
            outcomes[index] =
                phases[index] == .write
                ? written(answer, local: local) : Self.outcome(answer.failure ?? .malformed("no answer"))
        }
        return (
            replays.enumerated().map {
                $1 ?? HostOutcome(host: fleet.hosts[$0], result: .failure(.malformed("no replay")), seconds: 0)
            },
            outcomes.map { $0 ?? .skipped }
        )
    }

    /// What a host's dry run decides before any write (nil: write it), and the tag the write must match.
    func decide(_ outcome: HostOutcome<PolicyValidation>, local: VersionedPolicy) -> (PushOutcome?, etag: String) {
        switch outcome.result {
        case .success(let validation):
            let etag = ETag.quoted(validation.currentVersion)
            if !validation.valid {
                return (
                    .rejected("\(validation.field ?? "document"): \(validation.message ?? "refused by the agent")"),
                    etag
                )
            } else if validation.currentVersion == local.version {
                return (.unchanged, etag)
            } else if let expectedVersion, validation.currentVersion != expectedVersion {
                return (
                    .conflict(
                        "policy is \(validation.currentVersion.prefix(12)), not the expected \(expectedVersion.prefix(12))"
                    ), etag
                )
            }
            return (nil, etag)
        case .failure(let failure):
            return (Self.outcome(failure), "")
        }
    }

    /// What the write's answer means.
    func written(_ outcome: HostOutcome<HostResponse>, local: VersionedPolicy) -> PushOutcome {
        switch outcome.result {
        case .success(let response):
            let applied = try? APIJSON.decoder().decode(PolicyApplied.self, from: Data(response.body))
            return applied?.changed == false ? .unchanged : .applied(version: applied?.version ?? local.version)
        case .failure(.transport(.timeout(let why))):
            // The request may have arrived: say so, and how to see.
            return .unreachable(
                """
                timeout: \(why); the write may still apply (a retry with the same Idempotency-Key is answered once): \
                check with: memgatectl policy show --hosts \(outcome.host.name)
                """)
        case .failure(let failure):
            return Self.outcome(failure)
        }
    }

    /// A replay's answer as a dry run: it parsed the candidate (or refused it) and says what is in force.
    public static func dryRun(from replay: [HostOutcome<PolicyReplayReport>]) -> [HostOutcome<PolicyValidation>] {
        replay.map { outcome in
            outcome.map { report in
                PolicyValidation(
                    valid: true, version: report.candidateVersion,
                    changed: report.candidateVersion != report.currentVersion,
                    currentVersion: report.currentVersion)
            }
        }
    }

    /// `POST /v1/policy/validate` on every host: would it take `document`, and what is in force there.
    public static func dryRun(_ document: [UInt8], on fleet: FleetClient, hosts: [Int]? = nil) -> [HostOutcome<
        PolicyValidation
    >] {
        fleet.send("POST", { _ in APIRoute.policyValidate.path() }, to: hosts, body: document).map {
            FleetClient.decode($0, as: PolicyValidation.self)
        }
    }

    /// A host's failure as a push outcome, by the one meaning `HostFailure.kind` gives each status.
    static func outcome(_ failure: HostFailure) -> PushOutcome {
        switch (failure, failure.kind) {
        case (.transport(let error), _): .unreachable("\(error)")
        case (.api(_, _, let message), "conflict"): .conflict(message)
        case (.api(_, _, let message), "rejected"): .rejected(message)
        case (.api(_, _, let message), "forbidden"): .notAllowed(word: "forbidden", message)
        case (.api(_, _, let message), "unauthorized"): .notAllowed(word: "unauthorized", message)
        default: .rejected("\(failure)")
        }
    }
}
