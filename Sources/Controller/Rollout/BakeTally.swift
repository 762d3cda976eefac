import APITypes
import Foundation

/// How much harm a wave may show during its bake before the rollout stops and rolls back
/// (`--max-new-denials`, `--max-faulted`, `--max-unreachable`; all 0 by default).
public struct BakeLimits: Codable, Sendable, Equatable {
    public var maxNewDenials = 0
    public var maxFaulted = 0
    public var maxUnreachable = 0
    public init() {}
}

/// One thing a bake saw that counts against a limit: where, and which event.
public struct BakeEvidence: Sendable, Equatable, CustomStringConvertible {
    public var host: Int
    /// The event's durable id on that host (nil for a host that stopped answering).
    public var eventID: Int64?
    public var what: String

    public init(host: Int, eventID: Int64?, what: String) {
        self.host = host
        self.eventID = eventID
        self.what = what
    }

    public var description: String { eventID.map { "event \($0): \(what)" } ?? what }
}

/// A limit a wave went over.
public struct BakeBreach: Sendable, Equatable {
    /// `new denials`, `faulted VMs` or `unreachable hosts`.
    public var kind: String
    public var count: Int
    public var limit: Int
    /// What made the count (the first few are enough to act on).
    public var evidence: [BakeEvidence]

    public init(kind: String, count: Int, limit: Int, evidence: [BakeEvidence]) {
        self.kind = kind
        self.count = count
        self.limit = limit
        self.evidence = evidence
    }
}

/// What the event streams of a wave's hosts showed during its bake. Pure: fed the streams'
/// events and the hosts' comings and goings, it says whether a limit was passed.
///
/// A new denial is a conversion the candidate policy denied (its `policy_version` is the
/// candidate's): what the old policy denied is not the change's doing. A faulted VM is a
/// `vm_ended` whose final state is `faulted` (an implicit conversion the policy denied).
/// A host counts as unreachable while its stream is down, and stays counted once it was
/// down at the end of the bake.
public struct BakeTally: Sendable, Equatable {
    public private(set) var denials: [BakeEvidence] = []
    public private(set) var faulted: [BakeEvidence] = []
    /// Hosts whose stream is down now, and why.
    public private(set) var down: [Int: String] = [:]
    /// Hosts whose stream was open at some time during the bake: only these were seen at all.
    public private(set) var watched: Set<Int> = []
    /// Hosts whose stream attempt failed or was refused (a 503 when its slots are taken).
    public private(set) var failedAttempts: Set<Int> = []
    /// Events read, all hosts together.
    public private(set) var events = 0
    private let candidateVersion: String

    public init(candidateVersion: String) {
        self.candidateVersion = candidateVersion
    }

    /// One event from `host`'s stream (`type` and `data` as the stream carries them).
    public mutating func record(host: Int, eventID: Int64?, type: String, data: String) {
        events += 1
        guard type == "conversion" || type == "vm_ended",
            let entry = try? APIJSON.decoder().decode(EventEntry.self, from: Data(data.utf8))
        else { return }
        if let conversion = entry.conversion, conversion.decision == "denied",
            conversion.policyVersion == candidateVersion
        {
            denials.append(
                BakeEvidence(
                    host: host, eventID: entry.eventId,
                    what: """
                        VM \(conversion.vmId) \(conversion.trigger) \(conversion.direction) of \(conversion.size) bytes at \
                        0x\(String(conversion.gpa, radix: 16)) denied: \(conversion.reason)
                        """))
        }
        if let ended = entry.vmEvent, ended.finalState == "faulted" {
            faulted.append(
                BakeEvidence(
                    host: host, eventID: entry.eventId,
                    what: "VM \(ended.vmId) (\(ended.vmName)) faulted: \(ended.reason ?? "no reason given")"))
        }
    }

    public mutating func lost(host: Int, reason: String) {
        down[host] = reason
    }

    public mutating func regained(host: Int) {
        down[host] = nil
        watched.insert(host)
    }

    /// The host's stream ended, or an attempt to open it failed or was refused.
    public mutating func disconnected(host: Int, reason: String) {
        down[host] = reason
        failedAttempts.insert(host)
    }

    /// At the end of the bake, with what a last health look found: a host whose stream was refused or
    /// failed and never opened (its stream slots taken, say) was never watched, and counts as
    /// unreachable whether or not it answers. Otherwise the look decides: a watched host counts only
    /// if it is gone now, and so does one whose stream was still connecting when the bake ended.
    public mutating func settle(host: Int, answers: Bool, reason: String) {
        if !watched.contains(host), failedAttempts.contains(host) {
            down[host] = down[host] ?? "its event stream never opened"
        } else {
            down[host] = answers ? nil : reason
        }
    }

    /// The first limit passed, in the order denials, faulted VMs, unreachable hosts; nil when none is.
    public func breach(_ limits: BakeLimits) -> BakeBreach? {
        if denials.count > limits.maxNewDenials {
            return BakeBreach(
                kind: "new denials", count: denials.count, limit: limits.maxNewDenials,
                evidence: Array(denials.prefix(5)))
        }
        if faulted.count > limits.maxFaulted {
            return BakeBreach(
                kind: "faulted VMs", count: faulted.count, limit: limits.maxFaulted, evidence: Array(faulted.prefix(5)))
        }
        if down.count > limits.maxUnreachable {
            let evidence = down.sorted { $0.key < $1.key }.prefix(5).map {
                BakeEvidence(host: $0.key, eventID: nil, what: "unreachable: \($0.value)")
            }
            return BakeBreach(
                kind: "unreachable hosts", count: down.count, limit: limits.maxUnreachable, evidence: evidence)
        }
        return nil
    }
}
