import APITypes
import Foundation
import JSON
import MemoryModel

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
        // Every request of every phase (VMs, events, policy documents, API requests) ends by then.
        let end = deadline.map { Date(timeIntervalSinceNow: $0) }
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
        for (index, outcome) in fleet.get("/v1/vms", as: VMList.self, commandDeadline: end).enumerated() where reports[index].failure == nil {
            switch outcome.result {
            case .success(let list):
                do { try sink.write(host: outcome.host.name, vms: list.vms) } catch { reports[index].failure = error.message }
            case .failure(let failure):
                reports[index].failure = "\(failure)"
            }
        }
        var open = fleet.hosts.indices.filter { reports[$0].failure == nil }
        while !open.isEmpty {
            if Self.isPast(end) {
                for index in open { reports[index].failure = Self.outOfTime("events") }
                break
            }
            let pages = fetch(fleet, open, cursors, end)
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
        let healthy = fleet.hosts.indices.filter { reports[$0].failure == nil }
        for (index, failure) in pullPolicies(fleet, healthy, into: sink, end: end) { reports[index].failure = failure }
        for (index, failure) in pullRequests(fleet, healthy.filter { reports[$0].failure == nil }, into: sink, end: end) {
            reports[index].failure = failure
        }
        return reports
    }

    /// Each host's policy history (its newest 1000 applications) and the documents the
    /// fleet database lacks, each checked against its version before it is stored.
    func pullPolicies(_ fleet: FleetClient, _ hosts: [Int], into sink: AuditSink, end: Date?) -> [(Int, String)] {
        var failures: [(Int, String)] = []
        let histories = fleet.get("/v1/policy/history?limit=1000", as: PolicyHistory.self, on: hosts, commandDeadline: end)
        for (index, outcome) in zip(hosts, histories) {
            guard let history = outcome.value else {
                failures.append((index, "policy history: \(outcome.failure.map { "\($0)" } ?? "no answer")"))
                continue
            }
            do throws(AuditError) {
                let missing = try sink.missingDocuments(Set(history.entries.map(\.version)))
                var documents: [PolicyDocumentRecord] = []
                for version in missing.sorted() {
                    if Self.isPast(end) { throw AuditError(Self.outOfTime("policy documents")) }
                    let answer = fleet.send("GET", { _ in "/v1/policy/documents/\(version)" }, to: [index], commandDeadline: end)[0]
                    // A transfer cut at the command's end finishes a moment before it: within 0.1 s counts as the end.
                    let pastEnd = { end.map { $0.timeIntervalSinceNow <= 0.1 } ?? false }
                    guard let body = answer.value?.body else {
                        if pastEnd() { throw AuditError(Self.outOfTime("policy documents")) }
                        throw AuditError("policy document \(version.prefix(12)): \(answer.failure.map { "\($0)" } ?? "no answer")")
                    }
                    guard let record = Self.checkedDocument(body, version: version, interrupt: pastEnd) else {
                        if pastEnd() { throw AuditError(Self.outOfTime("policy documents")) }
                        throw AuditError("policy document \(version.prefix(12)) does not hash to its version; not stored")
                    }
                    documents.append(record)
                }
                try sink.write(host: outcome.host.name, documents: documents, history: history.entries)
            } catch {
                failures.append((index, error.message))
            }
        }
        return failures
    }

    /// A document is stored under its version only if it is that version: the SHA-256 of its
    /// canonical form (or, from agents before canonical versions, of its bytes). Pure.
    public static func checkedDocument(_ body: [UInt8], version: String, interrupt: (() -> Bool)? = nil) -> PolicyDocumentRecord? {
        let parsed = try? StrictJSON.parse(body, interrupt: interrupt)
        guard parsed.map({ SHA256.hex($0.canonical()) == version }) == true || SHA256.hex(body) == version,
              let text = String(validating: body, as: UTF8.self) else { return nil }
        var name: String?
        if case .string(let value)? = parsed?["name"] { name = value }
        return PolicyDocumentRecord(version: version, name: name, document: text)
    }

    /// Each host's admitted writes after its stored cursor, page by page, at most `maxRows` a run.
    func pullRequests(_ fleet: FleetClient, _ hosts: [Int], into sink: AuditSink, end: Date?) -> [(Int, String)] {
        var failures: [(Int, String)] = []
        for index in hosts {
            let name = fleet.hosts[index].name
            do throws(AuditError) {
                // The same promise as events: ids strictly ascending past the cursor, at most --max-rows a run.
                var cursor = EventCursor(position: try sink.requestCursor(host: name), maxRows: maxRows)
                pages: while true {
                    if Self.isPast(end) { throw AuditError(Self.outOfTime("api requests")) }
                    let outcome = fleet.get("/v1/audit/requests?after=\(cursor.position)&limit=\(pageSize)", as: APIRequestPage.self, on: [index],
                                            commandDeadline: end)[0]
                    guard let page = outcome.value else { throw AuditError("api requests: \(outcome.failure.map { "\($0)" } ?? "no answer")") }
                    switch cursor.advance(page.items, id: \.id, nextAfter: page.nextAfter, pageSize: pageSize, noun: "request") {
                    case .more(let requests):
                        try sink.write(host: name, requests: requests, after: cursor.position)
                    case .done(let requests):
                        try sink.write(host: name, requests: requests, after: cursor.position)
                        break pages
                    case .failed(let reason, let requests):
                        try sink.write(host: name, requests: requests, after: cursor.position)
                        throw AuditError("api requests: \(reason)")
                    }
                }
            } catch {
                failures.append((index, error.message))
            }
        }
        return failures
    }

    /// True once `--max-duration`'s end (if any) has come.
    static func isPast(_ end: Date?) -> Bool { end.map { $0.timeIntervalSinceNow <= 0 } ?? false }

    /// What a host that ran out of `--max-duration` in `phase` is told.
    static func outOfTime(_ phase: String) -> String { "\(phase) not finished within --max-duration; run again to continue" }

    private func fetch(_ fleet: FleetClient, _ hosts: [Int], _ cursors: [EventCursor], _ end: Date?) -> [HostOutcome<EventPage>] {
        fleet.send("GET", { "/v1/events?after=\(cursors[$0].position)&limit=\(pageSize)" }, to: hosts, commandDeadline: end).map {
            FleetClient.decode($0, as: EventPage.self)
        }
    }
}
