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
    case unreachable(String)
    /// Not attempted: `--max-failures` was reached first.
    case skipped

    public var word: String {
        switch self {
        case .applied: "applied"
        case .unchanged: "unchanged"
        case .rejected: "rejected"
        case .conflict: "conflict"
        case .unreachable: "unreachable"
        case .skipped: "skipped"
        }
    }

    public var detail: String {
        switch self {
        case .applied(let version): "now \(version.prefix(12))"
        case .unchanged: "already in force"
        case .rejected(let why), .conflict(let why), .unreachable(let why): why
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

/// `memgatectl policy push`: validate locally, read every host's version, dry-run on
/// every host, then replace with `If-Match` — so a host either keeps its old policy
/// or has the new one, never part of it.
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

        // 1. Every host's current version.
        for (index, outcome) in fleet.send("GET", { _ in "/v1/policy" }).enumerated() {
            switch outcome.result {
            case .success(let response):
                let tag = response.headers["etag"] ?? ""
                etags[index] = tag
                let current = tag.trimmingCharacters(in: CharacterSet(charactersIn: "\"W/"))
                if current == local.version {
                    outcomes[index] = .unchanged
                } else if let expectedVersion, current != expectedVersion {
                    outcomes[index] = .conflict("policy is \(current.prefix(12)), not the expected \(expectedVersion.prefix(12))")
                }
            case .failure(let failure):
                outcomes[index] = Self.outcome(failure)
            }
        }
        // 2. Dry run where a write is still due.
        var due = (0..<count).filter { outcomes[$0] == nil }
        for (index, outcome) in zip(due, fleet.send("POST", { _ in "/v1/policy/validate" }, to: due, body: document)) {
            switch outcome.result {
            case .success(let response):
                let validation = try? APIJSON.decoder().decode(PolicyValidation.self, from: Data(response.body))
                if validation?.valid != true {
                    outcomes[index] = .rejected("\(validation?.field ?? "document"): \(validation?.message ?? "refused by the agent")")
                }
            case .failure(let failure):
                outcomes[index] = Self.outcome(failure)
            }
        }
        let failures = outcomes.compactMap { $0 }.filter(\.isFailure).count
        due = (0..<count).filter { outcomes[$0] == nil }
        if let maxFailures, failures >= maxFailures {
            for index in due { outcomes[index] = .skipped }
            return outcomes.map { $0 ?? .skipped }
        }
        // 3. The write, conditional on the version read in step 1.
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

    static func outcome(_ failure: HostFailure) -> PushOutcome {
        switch failure {
        case .transport(let error): .unreachable("\(error)")
        case .api(412, _, let message): .conflict(message)
        case .api(422, _, let message): .rejected(message)
        default: .rejected("\(failure)")
        }
    }
}
