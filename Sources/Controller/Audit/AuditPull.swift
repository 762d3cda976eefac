import APITypes
import Foundation

/// What `audit pull` did on one host.
public struct PullReport: Sendable, Equatable {
    public var host: String
    public var events: Int
    public var cursor: Int64
    public var failure: String?
}

/// `memgatectl audit pull`: every host's events after its stored cursor, page by
/// page (all hosts' next pages at once), each page committed with its cursor.
/// A host that does not advance, sends more than `maxRows` events, or is not done
/// by `deadline` fails with the reason; what it sent that was valid is kept.
public struct AuditPull {
    public var pageSize = 1000
    /// Events one host may hand out in one run.
    public var maxRows = 1_000_000
    /// Seconds the whole pull may take (nil: no limit).
    public var deadline: Double?

    public init(pageSize: Int = 1000, maxRows: Int = 1_000_000, deadline: Double? = nil) {
        self.pageSize = pageSize
        self.maxRows = maxRows
        self.deadline = deadline
    }

    public func run(_ fleet: FleetClient, into sink: AuditSink, now: () -> UInt64) -> [PullReport] {
        let started = ContinuousClock.now
        var reports = fleet.hosts.map { PullReport(host: $0.name, events: 0, cursor: 0, failure: nil) }
        var cursors: [EventCursor] = []
        for (index, host) in fleet.hosts.enumerated() {
            do {
                cursors.append(EventCursor(position: try sink.cursor(host: host.name, url: host.url), maxRows: maxRows))
            } catch {
                cursors.append(EventCursor(position: 0, maxRows: maxRows))
                reports[index].failure = error.message
            }
        }
        // VMs first, so the rows about them have a name to join with.
        for (index, outcome) in fleet.get("/v1/vms", as: VMList.self).enumerated() where reports[index].failure == nil {
            switch outcome.result {
            case .success(let list):
                do { try sink.write(host: outcome.host.name, vms: list.vms) } catch { reports[index].failure = error.message }
            case .failure(let failure):
                reports[index].failure = "\(failure)"
            }
        }
        var open = fleet.hosts.indices.filter { reports[$0].failure == nil }
        while !open.isEmpty {
            if let deadline, started.duration(to: .now) >= .seconds(deadline) {
                for index in open { reports[index].failure = "not finished within --deadline \(deadline) s; run again to continue" }
                break
            }
            let pages = fetch(fleet, open, cursors)
            var next: [Int] = []
            for (index, outcome) in zip(open, pages) {
                switch outcome.result {
                case .success(let page):
                    let before = cursors[index]
                    let step = cursors[index].advance(with: page, pageSize: pageSize)
                    let fresh: [EventEntry]
                    switch step {
                    case .more(let events): fresh = events; next.append(index)
                    case .done(let events): fresh = events
                    case .failed(let reason, let events): fresh = events; reports[index].failure = reason
                    }
                    guard !fresh.isEmpty || cursors[index].position != before.position else { continue }
                    do {
                        try sink.write(host: outcome.host.name, events: fresh, after: cursors[index].position, atNanos: now())
                        reports[index].events += fresh.count
                    } catch {
                        cursors[index] = before
                        next.removeAll { $0 == index }
                        reports[index].failure = error.message
                    }
                case .failure(let failure):
                    reports[index].failure = "\(failure)"
                }
            }
            open = next
        }
        for index in reports.indices { reports[index].cursor = cursors[index].position }
        return reports
    }

    private func fetch(_ fleet: FleetClient, _ hosts: [Int], _ cursors: [EventCursor]) -> [HostOutcome<EventPage>] {
        fleet.send("GET", { "/v1/events?after=\(cursors[$0].position)&limit=\(pageSize)" }, to: hosts).map {
            FleetClient.decode($0, as: EventPage.self)
        }
    }
}
