import APITypes
import Foundation
import JSON

/// Every host's events after its position, page by page (all hosts' next pages at
/// once), each host until it has no more, fails, or the deadline comes: the one fleet
/// pull loop, behind `audit pull` (which stores and verifies what it takes) and
/// `memgatectl events` (which prints it). A host that does not advance, or sends more
/// than `maxRows` events, fails with the reason; what it sent that was valid is taken.
public struct EventPull {
    public var pageSize: Int
    public var maxRows: Int
    /// Every kind of event (`kinds=all`, with chain values); else faults and conversions.
    public var allKinds: Bool

    public init(pageSize: Int = 1000, maxRows: Int, allKinds: Bool) {
        self.pageSize = pageSize
        self.maxRows = maxRows
        self.allKinds = allKinds
    }

    /// What the taker did with one host's page.
    public struct Taken: Sendable, Equatable {
        /// Where the host's cursor stands now (nil: where it stood before the page, which was not taken).
        public var position: Int64?
        /// Why the host stops here (nil: ask it again while it has more).
        public var failure: String?

        public init(position: Int64?, failure: String? = nil) {
            self.position = position
            self.failure = failure
        }
    }

    /// One host's new events, with their JSON as the host sent it (for chain checks; empty unless `rawEntries`).
    public struct Batch {
        public var host: Int
        public var events: [EventEntry]
        public var entries: [JSONValue]
        /// Where the cursor stands once these are taken.
        public var position: Int64
    }

    /// Each host's head now (`GET /v1/events?from=end`): a pull bounded by it ends even while guests keep converting.
    public static func heads(_ fleet: FleetClient, hosts: [Int], end: Date?) -> [Int: Int64] {
        var heads: [Int: Int64] = [:]
        for (index, outcome) in zip(
            hosts,
            fleet.get(
                APIRoute.events.path(query: "from=end&limit=1"), as: EventPage.self, on: hosts, commandDeadline: end))
        {
            if let head = outcome.value?.nextAfter { heads[index] = head }
        }
        return heads
    }

    /// Pulls `hosts` from `positions` (indexed by host), up to `through` where given.
    /// - Parameters:
    ///   - take: each host's page, in host order within a round.
    ///   - roundEnded: after every host's page of a round was taken (to merge a round across hosts).
    /// - Returns: where each host's cursor stands, and why each host that failed did.
    public func run(
        _ fleet: FleetClient, hosts: [Int], from positions: [Int64], through: [Int: Int64] = [:],
        rawEntries: Bool = false,
        end: Date?, take: (Batch) -> Taken, roundEnded: () -> Void = {}
    ) -> (positions: [Int64], failures: [Int: String]) {
        var cursors = positions.map { EventCursor(position: $0, maxRows: maxRows) }
        var failures: [Int: String] = [:]
        var open = hosts.filter { index in through[index].map { positions[index] < $0 } ?? true }
        while !open.isEmpty {
            if AuditPull.isPast(end) {
                for index in open {
                    failures[index] = AuditPull.outOfTime("events")
                }
                break
            }
            var next: [Int] = []
            for (index, outcome) in zip(open, fetch(fleet, open, cursors, rawEntries: rawEntries, end: end)) {
                guard let (page, entries) = outcome.value else {
                    failures[index] = outcome.failure.map { "\($0)" } ?? "no answer"
                    continue
                }
                let before = cursors[index]
                var events: [EventEntry]
                var more = false
                switch cursors[index].advance(with: page, pageSize: pageSize) {
                case .more(let fresh):
                    events = fresh
                    more = true
                case .done(let fresh): events = fresh
                case .failed(let reason, let fresh):
                    events = fresh
                    failures[index] = reason
                }
                var position = cursors[index].position
                if let bound = through[index], position >= bound {
                    // Past the head the pull began with: what came since is the next pull's.
                    events = events.filter { $0.eventId <= bound }
                    position = bound
                    more = false
                }
                let taken = take(
                    Batch(host: index, events: events, entries: Array(entries.prefix(events.count)), position: position)
                )
                cursors[index] = EventCursor(
                    position: taken.position ?? before.position, maxRows: maxRows, rows: cursors[index].rows)
                if let failure = taken.failure { failures[index] = failure }
                if more, failures[index] == nil { next.append(index) }
            }
            roundEnded()
            open = next
        }
        return (cursors.map(\.position), failures)
    }

    /// The next page from each host, typed, and as JSON values when asked (for the chain).
    private func fetch(
        _ fleet: FleetClient, _ hosts: [Int], _ cursors: [EventCursor], rawEntries: Bool,
        end: Date?
    ) -> [HostOutcome<(EventPage, [JSONValue])>] {
        let kinds = allKinds ? "kinds=all&" : ""
        return fleet.send(
            "GET", { APIRoute.events.path(query: "\(kinds)after=\(cursors[$0].position)&limit=\(pageSize)") },
            to: hosts, commandDeadline: end
        )
        .map { outcome in
            let typed = FleetClient.decode(outcome, as: EventPage.self)
            var result = HostOutcome<(EventPage, [JSONValue])>(
                host: outcome.host, result: .failure(.malformed("no page")), seconds: outcome.seconds)
            switch typed.result {
            case .success(let page):
                guard rawEntries else {
                    result.result = .success((page, []))
                    break
                }
                if let body = outcome.value?.body, let entries = AuditPull.entries(body, chain: "events"),
                    entries.count == page.events.count
                {
                    result.result = .success((page, entries))
                } else {
                    result.result = .failure(.malformed("an events page whose entries do not parse"))
                }
            case .failure(let failure):
                result.result = .failure(failure)
            }
            return result
        }
    }
}
