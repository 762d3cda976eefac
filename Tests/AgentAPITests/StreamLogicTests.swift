import EventStore
import Testing

@testable import AgentAPI

/// The event stream's pure parts: framing, filters, the shared window.
struct StreamLogicTests {
    func event(_ id: Int64, _ kind: String = "conversion", vm: Int64? = 1) -> StreamEvent {
        StreamEvent(id: id, kind: kind, vmID: vm, json: Array("{\"event_id\":\(id)}".utf8))
    }

    @Test func framesAreWhatTheSpecificationParses() {
        #expect(
            String(decoding: SSEFrame.event(id: 42, type: "conversion", data: Array("{\"a\":1}".utf8)), as: UTF8.self)
                == "id: 42\nevent: conversion\ndata: {\"a\":1}\n\n")
        let overflow = String(decoding: SSEFrame.overflow(resumeAfter: 7, bufferBytes: 1024), as: UTF8.self)
        #expect(
            overflow.hasPrefix("id: 7\nevent: overflow\ndata: {") && overflow.contains("\"resume_after\":7")
                && overflow.hasSuffix("}\n\n"))
        #expect(!overflow.dropLast(2).contains("\n\n"), "one event")
        let pruned = String(decoding: SSEFrame.pruned(after: 3, through: 90), as: UTF8.self)
        #expect(pruned.hasPrefix("id: 3\nevent: pruned\n") && pruned.contains("\"pruned_through\":90"))
        #expect(SSEFrame.heartbeat.first == UInt8(ascii: ":"), "a comment, which clients ignore")
    }

    @Test func filtersByVMAndKind() {
        let all = StreamFilter()
        #expect(all.matches(event(1)) && all.matches(event(2, "policy_applied", vm: nil)))
        let vm = StreamFilter(vm: 2)
        #expect(
            !vm.matches(event(1)) && vm.matches(event(1, vm: 2)) && !vm.matches(event(3, "policy_applied", vm: nil)))
        let lifecycle = StreamFilter(kinds: ["vm"])
        #expect(
            lifecycle.matches(event(1, "vm_started")) && lifecycle.matches(event(2, "vm_ended"))
                && !lifecycle.matches(event(3)))
        let exact = StreamFilter(kinds: ["vm_ended", "memory_fault"])
        #expect(
            exact.matches(event(1, "vm_ended")) && !exact.matches(event(2, "vm_started"))
                && exact.matches(event(3, "memory_fault")))
    }

    @Test func theWindowServesEveryEventAfterACursorAtOrPastItsFloor() {
        var window = StreamWindow(capacity: 4, head: 10)
        #expect(window.floor == 10 && window.head == 10 && window.events(after: 10, limit: 9).isEmpty)
        window.append([event(12), event(13), event(15)])
        #expect(window.head == 15 && window.floor == 10)
        #expect(window.events(after: 10, limit: 9).map(\.id) == [12, 13, 15])
        #expect(window.events(after: 12, limit: 1).map(\.id) == [13])
        #expect(window.events(after: 14, limit: 9).map(\.id) == [15], "a cursor between ids")
        window.append([event(16), event(17), event(20)])
        // Six events, capacity four: the two oldest go, and the floor says what is no longer here.
        #expect(window.count == 4 && window.floor == 13)
        #expect(window.events(after: 13, limit: 9).map(\.id) == [15, 16, 17, 20])
        for round in 0..<100 {
            window.append([event(21 + Int64(round))])
        }
        #expect(window.count == 4 && window.floor == 116 && window.head == 120)
        #expect(window.events(after: 116, limit: 9).map(\.id) == [117, 118, 119, 120])
        window.append([])
        #expect(window.head == 120)
    }

    /// A reader's share is the frames of its events back to back, rendered once in the window.
    @Test func theWindowSharesRenderedFramesAndFiltersRuns() {
        var window = StreamWindow(capacity: 3, head: 0)
        #expect(window.frames(after: 0, limit: 9, filter: StreamFilter()) == nil)
        window.append([event(1), event(2, "vm_started", vm: 2), event(3), event(4, vm: 2)])
        let frame = { (e: StreamEvent) in SSEFrame.event(id: e.id, type: e.kind, data: e.json) }
        // Capacity three: event 1 went; the share starts after the floor.
        let all = window.frames(after: 1, limit: 9, filter: StreamFilter())
        #expect(
            all?.bytes == frame(event(2, "vm_started", vm: 2)) + frame(event(3)) + frame(event(4, vm: 2))
                && all?.through == 4)
        #expect(window.frames(after: 2, limit: 1, filter: StreamFilter())?.bytes == frame(event(3)))
        let vm2 = window.frames(after: 1, limit: 9, filter: StreamFilter(vm: 2))
        #expect(vm2?.bytes == frame(event(2, "vm_started", vm: 2)) + frame(event(4, vm: 2)) && vm2?.through == 4)
        // Nothing passes, but the events were looked at: the cursor moves on.
        let none = window.frames(after: 1, limit: 9, filter: StreamFilter(kinds: ["memory_fault"]))
        #expect(none?.bytes.isEmpty == true && none?.through == 4)
        #expect(window.frames(after: 4, limit: 9, filter: StreamFilter()) == nil)
        // Many more than the capacity: what is left is still exact.
        for id in Int64(5)...Int64(40) { window.append([event(id)]) }
        #expect(
            window.frames(after: 37, limit: 9, filter: StreamFilter())?.bytes == frame(event(38)) + frame(event(39))
                + frame(event(40)))
    }
}
