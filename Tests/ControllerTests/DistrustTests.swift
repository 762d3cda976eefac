import APITypes
import Testing
@testable import Controller

/// Pure checks of what an agent sends back.
struct EventCursorTests {
    func page(_ ids: [Int64], next: Int64? = nil) -> EventPage {
        EventPage(events: ids.map { EventEntry(fault: FaultEvent(eventId: $0, vmId: 1, vcpu: 0, timeNs: 0, gpa: 0, size: 4096, flags: 0, source: "kvm")) },
                  nextAfter: next ?? ids.last ?? 0)
    }

    /// API requests page under the same promise, their reasons naming what they are.
    @Test func requestPagesKeepTheSamePromise() {
        func request(_ id: Int64) -> APIRequestRecord {
            APIRequestRecord(id: id, timeNs: 0, method: "PUT", path: "/v1/policy", status: 200, durationNs: 0, client: "admin")
        }
        var cursor = EventCursor(position: 0, maxRows: 3)
        #expect(cursor.advance([request(1), request(2)], id: \.id, nextAfter: 2, pageSize: 2, noun: "request") == .more([request(1), request(2)]))
        guard case .failed(let repeated, _) = cursor.advance([request(2)], id: \.id, nextAfter: 2, pageSize: 2, noun: "request") else {
            Issue.record("a repeated id must fail"); return
        }
        #expect(repeated.contains("request 2 again"))
        guard case .failed(let cut, let kept) = cursor.advance([request(3), request(4)], id: \.id, nextAfter: 4, pageSize: 2, noun: "request") else {
            Issue.record("--max-rows must stop the host"); return
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
            Issue.record("a page at or before the cursor must fail"); return
        }
        #expect(repeated.contains("not advancing") && kept.isEmpty && cursor.position == 10)
        guard case .failed(let order, _) = cursor.advance(with: page([12, 14, 13]), pageSize: 3) else {
            Issue.record("ids out of order must fail"); return
        }
        #expect(order.contains("out of order"))
        guard case .failed(let behind, _) = cursor.advance(with: page([11, 12], next: 11), pageSize: 3) else {
            Issue.record("next_after behind the events must fail"); return
        }
        #expect(behind.contains("behind"))
        guard case .failed(let oversize, _) = cursor.advance(with: page([11, 12, 13, 14]), pageSize: 3) else {
            Issue.record("more events than asked for must fail"); return
        }
        #expect(oversize.contains("for a page of 3"))
        #expect(cursor.position == 10 && cursor.rows == 0)
    }

    @Test func maxRowsKeepsWhatFitsAndStops() {
        var cursor = EventCursor(position: 0, maxRows: 5)
        #expect(cursor.advance(with: page([1, 2, 3]), pageSize: 3) == .more(page([1, 2, 3]).events))
        guard case .failed(let reason, let kept) = cursor.advance(with: page([4, 5, 6]), pageSize: 3) else {
            Issue.record("past maxRows the host must fail"); return
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
