import EventStore
import Testing
@testable import AgentAPI

/// The event stream's pure parts: framing, filters, the shared window.
struct StreamLogicTests {
    func event(_ id: Int64, _ kind: String = "conversion", vm: Int64? = 1) -> StreamEvent {
        StreamEvent(id: id, kind: kind, vmID: vm, json: Array("{\"event_id\":\(id)}".utf8))
    }

    @Test func framesAreWhatTheSpecificationParses() {
        #expect(String(decoding: SSEFrame.event(id: 42, type: "conversion", data: Array("{\"a\":1}".utf8)), as: UTF8.self)
                == "id: 42\nevent: conversion\ndata: {\"a\":1}\n\n")
        let overflow = String(decoding: SSEFrame.overflow(resumeAfter: 7, bufferBytes: 1024), as: UTF8.self)
        #expect(overflow.hasPrefix("id: 7\nevent: overflow\ndata: {") && overflow.contains("\"resume_after\":7") && overflow.hasSuffix("}\n\n"))
        #expect(!overflow.dropLast(2).contains("\n\n"), "one event")
        let pruned = String(decoding: SSEFrame.pruned(after: 3, through: 90), as: UTF8.self)
        #expect(pruned.hasPrefix("id: 3\nevent: pruned\n") && pruned.contains("\"pruned_through\":90"))
        #expect(SSEFrame.heartbeat.first == UInt8(ascii: ":"), "a comment, which clients ignore")
    }

    @Test func filtersByVMAndKind() {
        let all = StreamFilter()
        #expect(all.matches(event(1)) && all.matches(event(2, "policy_applied", vm: nil)))
        let vm = StreamFilter(vm: 2)
        #expect(!vm.matches(event(1)) && vm.matches(event(1, vm: 2)) && !vm.matches(event(3, "policy_applied", vm: nil)))
        let lifecycle = StreamFilter(kinds: ["vm"])
        #expect(lifecycle.matches(event(1, "vm_started")) && lifecycle.matches(event(2, "vm_ended")) && !lifecycle.matches(event(3)))
        let exact = StreamFilter(kinds: ["vm_ended", "memory_fault"])
        #expect(exact.matches(event(1, "vm_ended")) && !exact.matches(event(2, "vm_started")) && exact.matches(event(3, "memory_fault")))
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
}
