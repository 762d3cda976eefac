import APITypes
import Foundation

/// `memgatectl policy replay` and the replay before a push: `POST /v1/policy/replay`
/// on every host, and the fleet's totals.
public enum PolicyReplayRun {
    /// The query a replay takes (`since`, `until`, `vm`, `samples`), already validated.
    public static func path(since: UInt64? = nil, until: UInt64? = nil, vm: Int64? = nil, samples: Int = 20) -> String {
        var query = ["samples=\(samples)"]
        if let since { query.append("since=\(since)") }
        if let until { query.append("until=\(until)") }
        if let vm { query.append("vm=\(vm)") }
        return APIRoute.policyReplay.path(query: query.joined(separator: "&"))
    }

    public static func run(_ document: [UInt8], on fleet: FleetClient, path: String = path()) -> [HostOutcome<
        PolicyReplayReport
    >] {
        fleet.send("POST", { _ in path }, body: document).map { FleetClient.decode($0, as: PolicyReplayReport.self) }
    }

    /// The hosts' reports added up. Pure.
    public struct Totals: Sendable, Equatable, Codable {
        public var hosts = 0
        public var requests = 0
        public var changed = 0
        public var allowedToDenied = 0
        public var deniedToAllowed = 0
        public var unrecordedDenials = 0
        public var skipped = 0
        /// The candidate's decisions by what made them, over every host.
        public var byRule: [String: PolicyReplayReport.RuleCount] = [:]

        public init() {}

        public init(_ reports: [PolicyReplayReport]) {
            for report in reports { add(report) }
        }

        public mutating func add(_ report: PolicyReplayReport) {
            hosts += 1
            requests += report.requests
            changed += report.changed
            allowedToDenied += report.allowedToDenied
            deniedToAllowed += report.transitions.first { $0.from == "denied" && $0.to == "allowed" }?.count ?? 0
            unrecordedDenials += report.unrecordedDenials
            skipped += report.skipped.values.reduce(0, +)
            for rule in report.byRule {
                var sum =
                    byRule[rule.source] ?? PolicyReplayReport.RuleCount(source: rule.source, allowed: 0, denied: 0)
                sum.allowed += rule.allowed
                sum.denied += rule.denied
                byRule[rule.source] = sum
            }
        }

        /// One line for people: what the candidate would have changed.
        public var summary: String {
            "\(requests) recorded requests on \(hosts) host\(hosts == 1 ? "" : "s"): \(allowedToDenied) allowed → denied, "
                + "\(deniedToAllowed) denied → allowed"
                + (unrecordedDenials > 0 ? " (\(unrecordedDenials) denials over recording budgets not replayed)" : "")
        }
    }
}
