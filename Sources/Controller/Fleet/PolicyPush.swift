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

    public func run(_ fleet: FleetClient) -> [PushOutcome] {
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
        for (index, outcome) in Self.dryRun(document, on: fleet).enumerated() {
            switch outcome.result {
            case .success(let validation):
                etags[index] = ETag.quoted(validation.currentVersion)
                if !validation.valid {
                    outcomes[index] = .rejected("\(validation.field ?? "document"): \(validation.message ?? "refused by the agent")")
                } else if validation.currentVersion == local.version {
                    outcomes[index] = .unchanged
                } else if let expectedVersion, validation.currentVersion != expectedVersion {
                    outcomes[index] = .conflict("policy is \(validation.currentVersion.prefix(12)), not the expected \(expectedVersion.prefix(12))")
                }
            case .failure(let failure):
                outcomes[index] = Self.outcome(failure)
            }
        }
        var due: [Int]
        let failures = outcomes.compactMap { $0 }.filter(\.isFailure).count
        due = (0..<count).filter { outcomes[$0] == nil }
        if let maxFailures, failures >= maxFailures {
            for index in due { outcomes[index] = .skipped }
            return outcomes.map { $0 ?? .skipped }
        }
        // 2. The write, conditional on the version the dry run saw.
        for (index, outcome) in zip(due, fleet.send("PUT", { _ in "/v1/policy" }, to: due, headers: { ["If-Match": etags[$0]] },
                                                    body: document)) {
            switch outcome.result {
            case .success(let response):
                let applied = try? APIJSON.decoder().decode(PolicyApplied.self, from: Data(response.body))
                outcomes[index] = applied?.changed == false ? .unchanged : .applied(version: applied?.version ?? local.version)
            case .failure(let failure):
                outcomes[index] = Self.outcome(failure)
            }
        }
        return outcomes.map { $0 ?? .skipped }
    }

    /// `POST /v1/policy/validate` on every host: would it take `document`, and what is in force there.
    public static func dryRun(_ document: [UInt8], on fleet: FleetClient) -> [HostOutcome<PolicyValidation>] {
        fleet.send("POST", { _ in "/v1/policy/validate" }, body: document).map { FleetClient.decode($0, as: PolicyValidation.self) }
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
