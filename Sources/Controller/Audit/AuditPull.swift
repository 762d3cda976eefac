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
public struct AuditPull {
    public var pageSize = 1000
    public init(pageSize: Int = 1000) { self.pageSize = pageSize }

    public func run(_ fleet: FleetClient, into sink: AuditSink, now: () -> UInt64) -> [PullReport] {
        var reports = fleet.hosts.map { PullReport(host: $0.name, events: 0, cursor: 0, failure: nil) }
        var cursors: [Int64] = []
        for (index, host) in fleet.hosts.enumerated() {
            do {
                cursors.append(try sink.cursor(host: host.name, url: host.url))
            } catch {
                cursors.append(0)
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
            let pages = fetch(fleet, open, cursors)
            var next: [Int] = []
            for (index, outcome) in zip(open, pages) {
                switch outcome.result {
                case .success(let page):
                    let fresh = page.events.filter { $0.eventId > cursors[index] }
                    do {
                        try sink.write(host: outcome.host.name, events: fresh, after: max(page.nextAfter, cursors[index]), atNanos: now())
                        reports[index].events += fresh.count
                        cursors[index] = max(page.nextAfter, cursors[index])
                        if page.events.count == pageSize { next.append(index) }
                    } catch {
                        reports[index].failure = error.message
                    }
                case .failure(let failure):
                    reports[index].failure = "\(failure)"
                }
            }
            open = next
        }
        for index in reports.indices { reports[index].cursor = cursors[index] }
        return reports
    }

    private func fetch(_ fleet: FleetClient, _ hosts: [Int], _ cursors: [Int64]) -> [HostOutcome<EventPage>] {
        fleet.send("GET", { "/v1/events?after=\(cursors[$0])&limit=\(pageSize)" }, to: hosts).map {
            FleetClient.decode($0, as: EventPage.self)
        }
    }
}
