import APITypes
import Foundation

/// What `audit verify` found on one host.
public struct ChainCheckReport: Sendable, Equatable {
    public var host: String
    /// events or requests.
    public var chain: String
    /// The head this database keeps (nil: never pulled with chains) and the host's live head.
    public var stored: StoredChainHead?
    public var live: ChainHead?
    public var failure: String?
}

/// `memgatectl audit verify`: every host's live chain heads against the heads the fleet database
/// keeps, without pulling rows. A host must still show, at the stored head's id, the value it had
/// (or have cut its chain there with the same value), and its chain must not end before it.
/// Breaks are recorded in `fleet_chain_breaks`.
public struct AuditVerify {
    public var deadline: Double?

    public init(deadline: Double? = nil) { self.deadline = deadline }

    public func run(_ fleet: FleetClient, against sink: AuditSink, now: () -> UInt64) -> [ChainCheckReport] {
        let end = deadline.map { Date(timeIntervalSinceNow: $0) }
        var heads: [AuditHead?] = Array(repeating: nil, count: fleet.hosts.count)
        var failures: [String?] = Array(repeating: nil, count: fleet.hosts.count)
        for (index, outcome) in fleet.get(APIRoute.auditHead.path(), as: AuditHead.self, commandDeadline: end)
            .enumerated()
        {
            if let head = outcome.value {
                heads[index] = head
            } else {
                failures[index] = "audit head: \(outcome.failure.map { "\($0)" } ?? "no answer")"
            }
        }
        var out: [ChainCheckReport] = []
        for chain in ["events", "requests"] {
            var reports = fleet.hosts.indices.map {
                PullReport(host: fleet.hosts[$0].name, events: 0, cursor: 0, failure: failures[$0])
            }
            var stored: [StoredChainHead?] = Array(repeating: nil, count: fleet.hosts.count)
            for index in fleet.hosts.indices where reports[index].failure == nil {
                do {
                    stored[index] = try sink.chainHead(host: fleet.hosts[index].name, chain: chain)
                    if stored[index] == nil {
                        reports[index].failure = "never pulled with chains here: run `memgatectl audit pull` first"
                    }
                } catch {
                    reports[index].failure = error.message
                }
            }
            // The positions are the stored heads, so no chain is taken up fresh: only compared.
            _ = AuditPull().startFollowers(
                fleet, chain: chain, heads: heads, positions: stored.map { $0?.id ?? 0 }, sink: sink,
                reports: &reports, end: end, now: now)
            for index in fleet.hosts.indices {
                out.append(
                    ChainCheckReport(
                        host: fleet.hosts[index].name, chain: chain, stored: stored[index],
                        live: heads[index].map { chain == "events" ? $0.events : $0.requests },
                        failure: reports[index].failure))
            }
        }
        return out
    }
}
