import APITypes
import Testing

@testable import Controller

/// Pure checks of what an agent sends back.
struct EventCursorTests {
    func page(_ ids: [Int64], next: Int64? = nil) -> EventPage {
        EventPage(
            events: ids.map {
                EventEntry(
                    fault: FaultEvent(
                        eventId: $0, vmId: 1, vcpu: 0, timeNs: 0, gpa: 0, size: 4096, flags: 0, source: "kvm"))
            },
            nextAfter: next ?? ids.last ?? 0)
    }

    /// API requests page under the same promise, their reasons naming what they are.
    @Test func requestPagesKeepTheSamePromise() {
        func request(_ id: Int64) -> APIRequestRecord {
            APIRequestRecord(
                id: id, timeNs: 0, method: "PUT", path: "/v1/policy", status: 200, durationNs: 0, client: "admin")
        }
        var cursor = EventCursor(position: 0, maxRows: 3)
        #expect(
            cursor.advance([request(1), request(2)], id: \.id, nextAfter: 2, pageSize: 2, noun: "request")
                == .more([request(1), request(2)]))
        guard
            case .failed(let repeated, _) = cursor.advance(
                [request(2)], id: \.id, nextAfter: 2, pageSize: 2, noun: "request")
        else {
            Issue.record("a repeated id must fail")
            return
        }
        #expect(repeated.contains("request 2 again"))
        guard
            case .failed(let cut, let kept) = cursor.advance(
                [request(3), request(4)], id: \.id, nextAfter: 4, pageSize: 2, noun: "request")
        else {
            Issue.record("--max-rows must stop the host")
            return
        }
        #expect(cut.contains("more than 3 requests") && kept == [request(3)] && cursor.position == 3)
    }

    @Test func anHonestHostAdvancesPageByPage() {
        var cursor = EventCursor(position: 0, maxRows: 100)
        #expect(cursor.advance(with: page([1, 2, 3]), pageSize: 3) == .more(page([1, 2, 3]).events))
        #expect(cursor.advance(with: page([4]), pageSize: 3) == .done(page([4]).events))
        #expect(cursor.position == 4 && cursor.rows == 4)
        // An empty page may move the cursor past pruned ids.
        #expect(cursor.advance(with: page([], next: 9), pageSize: 3) == .done([]))
        #expect(cursor.position == 9)
    }

    @Test func aHostThatRepeatsOrReordersFails() {
        var cursor = EventCursor(position: 10, maxRows: 100)
        guard case .failed(let repeated, let kept) = cursor.advance(with: page([9, 10, 11]), pageSize: 3) else {
            Issue.record("a page at or before the cursor must fail")
            return
        }
        #expect(repeated.contains("not advancing") && kept.isEmpty && cursor.position == 10)
        guard case .failed(let order, _) = cursor.advance(with: page([12, 14, 13]), pageSize: 3) else {
            Issue.record("ids out of order must fail")
            return
        }
        #expect(order.contains("out of order"))
        guard case .failed(let behind, _) = cursor.advance(with: page([11, 12], next: 11), pageSize: 3) else {
            Issue.record("next_after behind the events must fail")
            return
        }
        #expect(behind.contains("behind"))
        guard case .failed(let oversize, _) = cursor.advance(with: page([11, 12, 13, 14]), pageSize: 3) else {
            Issue.record("more events than asked for must fail")
            return
        }
        #expect(oversize.contains("for a page of 3"))
        #expect(cursor.position == 10 && cursor.rows == 0)
    }

    @Test func maxRowsKeepsWhatFitsAndStops() {
        var cursor = EventCursor(position: 0, maxRows: 5)
        #expect(cursor.advance(with: page([1, 2, 3]), pageSize: 3) == .more(page([1, 2, 3]).events))
        guard case .failed(let reason, let kept) = cursor.advance(with: page([4, 5, 6]), pageSize: 3) else {
            Issue.record("past maxRows the host must fail")
            return
        }
        #expect(kept.map(\.eventId) == [4, 5])
        #expect(reason.contains("--max-rows") && cursor.position == 5 && cursor.rows == 5)
    }
}

struct TerminalTextTests {
    @Test func controlsBecomeJSONEscapes() {
        #expect(TerminalText.sanitize("plain ünïcode 名前\tand\nlines") == "plain ünïcode 名前\tand\nlines")
        #expect(TerminalText.sanitize("a\u{1B}[2Jb") == "a\\u001b[2Jb")
        #expect(TerminalText.sanitize("\u{9B}31m\u{7F}\u{0}") == "\\u009b31m\\u007f\\u0000")
        #expect(TerminalText.sanitize("abc\u{202E}fed\u{2066}") == "abc\\u202efed\\u2066")
        #expect(TerminalText.sanitize("\r") == "\\u000d")
    }

    @Test func tableCellsAreSanitizedBeforeTheyAreMeasured() {
        var table = Table(["A", "B"])
        table.add(["x\u{1B}", "y"])
        #expect(table.render() == "A        B\nx\\u001b  y")
    }
}

/// The events path's own guard against a host that starts a page at the cursor (the request path has one too).
struct EventCursorRepeatTests {
    @Test func aPageStartingAtTheCursorFails() {
        var cursor = EventCursor(position: 10, maxRows: 100)
        let page = EventPage(
            events: [10, 11, 12].map {
                EventEntry(
                    fault: FaultEvent(
                        eventId: $0, vmId: 1, vcpu: 0, timeNs: 0, gpa: 0, size: 4096, flags: 0, source: "kvm"))
            }, nextAfter: 12)
        guard case .failed(let reason, let kept) = cursor.advance(with: page, pageSize: 3) else {
            Issue.record("event 10 again at cursor 10 must fail")
            return
        }
        #expect(reason.contains("event 10 again") && kept.isEmpty && cursor.position == 10)
    }
}

/// The one fleet pull loop (`audit pull`, `events`), against fake hosts.
struct EventPullTests {
    static func faults(_ ids: ClosedRange<Int64>) -> [EventEntry] {
        ids.map {
            EventEntry(
                fault: FaultEvent(
                    eventId: $0, vmId: 1, vcpu: 0, timeNs: UInt64($0), gpa: 0, size: 4096, flags: 0, source: "kvm"))
        }
    }

    /// A host whose guests keep converting: the pull stops at the head it began with.
    @Test func aBusyHostEndsAtTheHeadThePullBeganWith() {
        let transport = FakeTransport { request in
            if request.path.contains("from=end") { return json(EventPage(events: [], nextAfter: 25)) }
            let after = Int64(request.path.split(separator: "after=").last?.prefix { $0.isNumber } ?? "") ?? 0
            // Always a full page: ids never run out.
            return json(EventPage(events: Self.faults((after + 1)...(after + 10)), nextAfter: after + 10))
        }
        let fleet = FleetClient(hosts: hosts(2), transport: transport)
        let heads = EventPull.heads(fleet, hosts: [0, 1], end: nil)
        #expect(heads == [0: 25, 1: 25])
        var taken: [Int: [Int64]] = [:]
        var rounds = 0
        let (positions, failures) = EventPull(pageSize: 10, maxRows: 1000, allKinds: false)
            .run(
                fleet, hosts: [0, 1], from: [0, 0], through: heads, end: nil,
                take: { batch in
                    taken[batch.host, default: []] += batch.events.map(\.eventId)
                    return EventPull.Taken(position: batch.position)
                }, roundEnded: { rounds += 1 })
        #expect(failures.isEmpty && positions == [25, 25] && rounds == 3)
        #expect(taken[0] == Array(1...25) && taken[1] == Array(1...25))
    }

    /// A taker that fails a host stops it there, its cursor where the taker left it; the other goes on.
    @Test func aFailedTakeStopsOnlyThatHost() {
        let transport = FakeTransport { request in
            let after = Int64(request.path.split(separator: "after=").last?.prefix { $0.isNumber } ?? "") ?? 0
            return json(
                EventPage(
                    events: after >= 20 ? [] : Self.faults((after + 1)...(after + 10)), nextAfter: min(after + 10, 20)))
        }
        let fleet = FleetClient(hosts: hosts(2), transport: transport)
        let (positions, failures) = EventPull(pageSize: 10, maxRows: 1000, allKinds: true).run(
            fleet, hosts: [0, 1], from: [0, 0], end: nil
        ) { batch in
            batch.host == 0
                ? EventPull.Taken(position: nil, failure: "disk full") : EventPull.Taken(position: batch.position)
        }
        #expect(failures == [0: "disk full"] && positions == [0, 20])
        #expect(transport.requests.allSatisfy { $0.path.contains("kinds=all") })
    }
}
