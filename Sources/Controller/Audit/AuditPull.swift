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
        // Every request of every phase (heads, VMs, events, policy documents, API requests) ends by then.
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
        // Where each host's chains stand now, and whether they still extend what this database holds.
        var heads: [AuditHead?] = Array(repeating: nil, count: fleet.hosts.count)
        for (index, outcome) in fleet.get(APIRoute.auditHead.path(), as: AuditHead.self, commandDeadline: end)
            .enumerated()
        where reports[index].failure == nil {
            switch outcome.result {
            case .success(let head): heads[index] = head
            case .failure(.api(404, _, _)) where (try? sink.chainHead(host: outcome.host.name, chain: "events")) == nil:
                // An agent from before the audit chain (schema 9): its rows are pulled unverified until it is upgraded.
                break
            case .failure(.api(404, _, _)):
                reports[index].failure = Self.broken(
                    ChainBreak(
                        chain: "events", id: 0, afterID: 0, expected: nil, found: nil,
                        reason: """
                            the host no longer shows an audit chain (GET /v1/audit/head: 404), though it did when last pulled
                            """), host: outcome.host.name, sink: sink, now: now)
            case .failure(let failure):
                reports[index].failure = "audit head: \(failure)"
            }
        }
        var followers = startFollowers(
            fleet, chain: "events", heads: heads, positions: cursors.map(\.position), sink: sink, reports: &reports,
            end: end, now: now)
        // VMs first, so the rows about them have a name to join with.
        for (index, outcome) in fleet.get(APIRoute.vms.path(), as: VMList.self, commandDeadline: end).enumerated()
        where reports[index].failure == nil {
            switch outcome.result {
            case .success(let list):
                do { try sink.write(host: outcome.host.name, vms: list.vms) } catch {
                    reports[index].failure = error.message
                }
            case .failure(let failure):
                reports[index].failure = "\(failure)"
            }
        }
        let pull = EventPull(pageSize: pageSize, maxRows: maxRows, allKinds: true)
        let (positions, failures) = pull.run(
            fleet, hosts: fleet.hosts.indices.filter { reports[$0].failure == nil }, from: cursors.map(\.position),
            rawEntries: true, end: end
        ) { batch in
            let host = fleet.hosts[batch.host].name
            var events = batch.events, after = batch.position, failure: String?
            // Every row must extend the chain; the rows before a break are kept, the host stops there.
            if var follower = followers[batch.host] {
                let (valid, broke) = follower.accept(batch.entries)
                followers[batch.host] = follower
                if let broke {
                    events = Array(events.prefix(valid))
                    after = events.last?.eventId ?? cursors[batch.host].position
                    failure = Self.broken(broke, host: host, sink: sink, now: now)
                }
            }
            guard !events.isEmpty || after != cursors[batch.host].position else {
                return EventPull.Taken(position: after, failure: failure)
            }
            do throws(AuditError) {
                try sink.write(
                    host: host, events: events, after: after, head: followers[batch.host]?.head, atNanos: now())
                reports[batch.host].events += events.count
                cursors[batch.host] = EventCursor(position: after, maxRows: maxRows)
                return EventPull.Taken(position: after, failure: failure)
            } catch {
                return EventPull.Taken(position: nil, failure: error.message)
            }
        }
        for (index, failure) in failures { reports[index].failure = failure }
        for index in cursors.indices { cursors[index] = EventCursor(position: positions[index], maxRows: maxRows) }
        for index in reports.indices { reports[index].cursor = cursors[index].position }
        let healthy = fleet.hosts.indices.filter { reports[$0].failure == nil }
        for (index, failure) in pullPolicies(fleet, healthy, into: sink, end: end) { reports[index].failure = failure }
        for (index, failure) in pullRequests(
            fleet, healthy.filter { reports[$0].failure == nil }, heads: heads, into: sink, end: end, now: now)
        {
            reports[index].failure = failure
        }
        return reports
    }

    /// Records a break and says what the operator is told about it.
    static func broken(_ found: ChainBreak, host: String, sink: AuditSink, now: () -> UInt64) -> String {
        let recorded = (try? sink.record(host: host, break: found, atNanos: now())) != nil
        return "chain break (\(found.chain)): \(found.reason)\(recorded ? "; recorded in fleet_chain_breaks" : "")"
    }

    /// Each host's chain follower for `chain`, from the head stored here and the host's live head:
    /// a host that no longer shows the head it showed is recorded as broken (and gets none).
    func startFollowers(
        _ fleet: FleetClient, chain: String, heads: [AuditHead?], positions: [Int64], sink: AuditSink,
        reports: inout [PullReport], end: Date?, now: () -> UInt64
    ) -> [ChainFollower?] {
        var followers: [ChainFollower?] = Array(repeating: nil, count: fleet.hosts.count)
        var checks: [(index: Int, head: StoredChainHead, adopt: Bool)] = []
        for index in fleet.hosts.indices where reports[index].failure == nil {
            guard let live = heads[index].map({ chain == "events" ? $0.events : $0.requests }) else { continue }
            let name = fleet.hosts[index].name
            let stored: StoredChainHead?
            do { stored = try sink.chainHead(host: name, chain: chain) } catch {
                reports[index].failure = error.message
                continue
            }
            let genesis = live.genesis?.throughId ?? 0
            // Rows pulled before this database kept chains: the chain is taken up at the cursor, as the host shows it now.
            if stored == nil, positions[index] > genesis {
                checks.append((index, StoredChainHead(id: positions[index], chain: ""), true))
                continue
            }
            switch ChainFollower.start(chain: chain, stored: stored, live: live) {
            case .failure(let found):
                reports[index].failure = Self.broken(found, host: name, sink: sink, now: now)
            case .success(let start):
                followers[index] = start.follower
                if let cut = start.acceptedCut {
                    try? sink.recordCut(
                        host: name, chain: chain, from: cut.from, through: cut.through, pruned: cut.rows, atNanos: now()
                    )
                }
                if let head = start.mustShow { checks.append((index, head, false)) }
            }
        }
        guard !checks.isEmpty else { return followers }
        let path: (Int64) -> String = { id in
            chain == "events"
                ? APIRoute.events.path(query: "kinds=all&after=\(id - 1)&limit=1")
                : APIRoute.auditRequests.path(query: "after=\(id - 1)&limit=1")
        }
        let answers = fleet.send(
            "GET", { index in path(checks.first { $0.index == index }?.head.id ?? 1) }, to: checks.map(\.index),
            commandDeadline: end)
        for (check, answer) in zip(checks, answers) {
            let name = fleet.hosts[check.index].name
            guard let body = answer.value?.body, let entries = Self.entries(body, chain: chain) else {
                reports[check.index].failure =
                    "\(chain) chain at \(check.head.id): \(answer.failure.map { "\($0)" } ?? "an answer that is not a page")"
                continue
            }
            let entry = entries.first
            if check.adopt {
                guard let follower = ChainFollower(adopting: entry, at: check.head.id, chain: chain) else {
                    reports[check.index].failure =
                        "\(chain) chain: the host shows no chained row at the cursor \(check.head.id) to take the chain up from"
                    continue
                }
                followers[check.index] = follower
            } else if let found = ChainFollower.showsHead(check.head, entry: entry, chain: chain) {
                reports[check.index].failure = Self.broken(found, host: name, sink: sink, now: now)
                followers[check.index] = nil
            }
        }
        return followers
    }

    /// The entries of an events page (`events`) or of a requests page (`items`), as JSON values.
    static func entries(_ body: [UInt8], chain: String) -> [JSONValue]? {
        guard let page = try? StrictJSON.parse(body),
            case .array(let entries)? = page[chain == "events" ? "events" : "items"]
        else { return nil }
        return entries
    }

    /// Each host's policy history (its newest 1000 applications) and the documents the
    /// fleet database lacks, each checked against its version before it is stored.
    func pullPolicies(_ fleet: FleetClient, _ hosts: [Int], into sink: AuditSink, end: Date?) -> [(Int, String)] {
        var failures: [(Int, String)] = []
        let histories = fleet.get(
            APIRoute.policyHistory.path(query: "limit=\(PageLimit.range.upperBound)"), as: PolicyHistory.self,
            on: hosts, commandDeadline: end)
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
                    let answer = fleet.send(
                        "GET", { _ in APIRoute.policyDocument.path(version) }, to: [index], commandDeadline: end)[0]
                    // A transfer cut at the command's end finishes a moment before it: within 0.1 s counts as the end.
                    let pastEnd = { end.map { $0.timeIntervalSinceNow <= 0.1 } ?? false }
                    guard let body = answer.value?.body else {
                        if pastEnd() { throw AuditError(Self.outOfTime("policy documents")) }
                        throw AuditError(
                            "policy document \(version.prefix(12)): \(answer.failure.map { "\($0)" } ?? "no answer")")
                    }
                    guard let record = Self.checkedDocument(body, version: version, interrupt: pastEnd) else {
                        if pastEnd() { throw AuditError(Self.outOfTime("policy documents")) }
                        throw AuditError(
                            "policy document \(version.prefix(12)) does not hash to its version; not stored")
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
    public static func checkedDocument(_ body: [UInt8], version: String, interrupt: (() -> Bool)? = nil)
        -> PolicyDocumentRecord?
    {
        let parsed = try? StrictJSON.parse(body, interrupt: interrupt)
        guard parsed.map({ SHA256.hex($0.canonical()) == version }) == true || SHA256.hex(body) == version,
            let text = String(validating: body, as: UTF8.self)
        else { return nil }
        var name: String?
        if case .string(let value)? = parsed?["name"] { name = value }
        return PolicyDocumentRecord(version: version, name: name, document: text)
    }

    /// Each host's admitted writes after its stored cursor, page by page, at most `maxRows` a run, each
    /// checked against the request chain.
    func pullRequests(
        _ fleet: FleetClient, _ hosts: [Int], heads: [AuditHead?], into sink: AuditSink, end: Date?,
        now: () -> UInt64
    ) -> [(Int, String)] {
        var failures: [(Int, String)] = []
        var reports = fleet.hosts.map { PullReport(host: $0.name, events: 0, cursor: 0, failure: nil) }
        var positions: [Int64] = Array(repeating: 0, count: fleet.hosts.count)
        for index in fleet.hosts.indices {
            guard hosts.contains(index) else {
                reports[index].failure = "not pulled"
                continue
            }
            do { positions[index] = try sink.requestCursor(host: fleet.hosts[index].name) } catch {
                reports[index].failure = error.message
            }
        }
        var followers = startFollowers(
            fleet, chain: "requests", heads: heads, positions: positions, sink: sink, reports: &reports, end: end,
            now: now)
        for index in hosts {
            if let failure = reports[index].failure {
                failures.append((index, failure))
                continue
            }
            let name = fleet.hosts[index].name
            do throws(AuditError) {
                // The same promise as events: ids strictly ascending past the cursor, at most --max-rows a run.
                var cursor = EventCursor(position: positions[index], maxRows: maxRows)
                pages: while true {
                    if Self.isPast(end) { throw AuditError(Self.outOfTime("api requests")) }
                    let outcome = fleet.send(
                        "GET",
                        { _ in APIRoute.auditRequests.path(query: "after=\(cursor.position)&limit=\(pageSize)") },
                        to: [index],
                        commandDeadline: end)[0]
                    guard let body = outcome.value?.body, let entries = Self.entries(body, chain: "requests"),
                        let page = FleetClient.decode(outcome, as: APIRequestPage.self).value
                    else {
                        throw AuditError(
                            "api requests: \(outcome.failure.map { "\($0)" } ?? "an answer that is not a page")")
                    }
                    let step = cursor.advance(
                        page.items, id: \.id, nextAfter: page.nextAfter, pageSize: pageSize, noun: "request")
                    var requests: [APIRequestRecord]
                    var problem: String?
                    var done = false
                    switch step {
                    case .more(let items): requests = items
                    case .done(let items):
                        requests = items
                        done = true
                    case .failed(let reason, let items):
                        requests = items
                        problem = "api requests: \(reason)"
                    }
                    var after = cursor.position
                    if var follower = followers[index] {
                        let (valid, broke) = follower.accept(Array(entries.prefix(requests.count)))
                        followers[index] = follower
                        if let broke {
                            requests = Array(requests.prefix(valid))
                            after = requests.last?.id ?? positions[index]
                            problem = Self.broken(broke, host: name, sink: sink, now: now)
                        }
                    }
                    try sink.write(host: name, requests: requests, after: after, head: followers[index]?.head)
                    positions[index] = after
                    if let problem { throw AuditError(problem) }
                    if done { break pages }
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
    static func outOfTime(_ phase: String) -> String {
        "\(phase) not finished within --max-duration; run again to continue"
    }
}
