import Foundation
import Logging
import MemoryModel
import SQLite
import TestSupport
import Testing

@testable import EventStore

/// Issue 30: a VM's memory at any past moment, from checkpoints and the conversions after them,
/// checked against a replay of the same records in the test.
@Suite struct MemoryHistoryTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    let bounds = PageRange(start: 0x20_0000, end: 0x20_0000 + 512 * 4096)

    @Test func checkpointRunsRoundTripAndRefuseWhatIsNotRuns() {
        var map = PageStateMap(bounds: bounds, initial: .private)
        map.set(PageRange(start: 0x20_1000, end: 0x20_3000), to: .shared)
        let text = CheckpointRuns.encode(map)
        #expect(text == "200000-201000:p,201000-203000:s,203000-400000:p")
        #expect(CheckpointRuns.decode(text).map { PageStateMap(bounds: bounds, initial: .private, runs: $0) } == map)
        for bad in ["x", "200000-201000:q", "201000-200000:p", "200000:p", "200000-201000"] {
            #expect(CheckpointRuns.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func everyMomentEqualsAReplayOfTheRecords() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: logger)
        let vm = try store.register(
            VMRegistration(
                name: "history", memoryBytes: 1 << 25, vcpus: 1, backend: "alias", dataRAM: bounds,
                initialState: .private), createdNanos: 1)
        // 10,000 conversions (some denied, some several pages), and faults between them: more than two checkpoints' worth.
        var random = SplitMix64(state: 30)
        var expected = PageStateMap(bounds: bounds, initial: .private)
        var states: [(event: Int64, time: UInt64, map: PageStateMap)] = []
        for index in 0..<10_000 {
            let pages = 1 + random.next() % 4
            let page = random.next() % (512 - pages)
            let range = PageRange(start: bounds.start + page * 4096, end: bounds.start + (page + pages) * 4096)
            let toShared = random.next() % 2 == 0
            let denied = random.next() % 10 == 0
            let time = 1_000 + UInt64(index) * 10
            let pending = store.begin(
                conversion: ConversionRecord(
                    vmID: vm, vm: "history", vcpu: 0, requestedNanos: time, completedNanos: denied ? time + 5 : nil,
                    gpa: range.start, size: range.size,
                    direction: toShared ? .toShared : .toPrivate, trigger: .explicit,
                    decision: denied ? .denied : .pending,
                    reason: "r", policyVersion: "v", source: .emulated, discardedBytes: 0, guestResult: 0))
            if !denied {
                store.finish(
                    pending.ticket, decision: .applied, reason: nil, completedNanos: time + 5, discardedBytes: 0,
                    guestResult: 0)
                expected.set(range, to: toShared ? .shared : .private)
            }
            if index % 7 == 0 {
                _ = store.record(
                    fault: MemoryFaultRecord(
                        vmID: vm, vm: "history", vcpu: 0, timeNanos: time + 1, gpa: range.start, size: 4096,
                        flags: 0, source: .emulated))
            }
            states.append((Int64(pending.ticket.id), time, expected))
        }
        store.flush()
        store.close()
        let connection = try SQLiteConnection(path: path, readOnly: true)
        let checkpoints = try connection.scalar("SELECT count(*) FROM memory_checkpoints WHERE vm_id = \(vm)") ?? 0
        #expect(checkpoints >= 2, "\(checkpoints) checkpoints for 9,000 applied conversions")
        let queries = EventQueries(path: path)
        for sample in stride(from: 0, to: states.count, by: 97) + [states.count - 1] {
            let (event, time, map) = states[sample]
            guard case .success(let byEvent) = try queries.pastMemory(vm: vm, at: .event(event)),
                case .success(let byTime) = try queries.pastMemory(vm: vm, at: .time(time))
            else {
                Issue.record("no state at event \(event)")
                return
            }
            #expect(byEvent.map == map, "after event \(event)")
            #expect(byTime.map == map, "at \(time) ns")
            #expect(
                byEvent.replayed <= CheckpointKeeper.every + 1, "a checkpoint bounds the replay (\(byEvent.replayed))")
        }
        // Before anything happened: the initial state; an unknown VM: none.
        guard case .success(let initial) = try queries.pastMemory(vm: vm, at: .time(999)) else {
            Issue.record("no initial state")
            return
        }
        #expect(initial.map == PageStateMap(bounds: bounds, initial: .private) && initial.throughEventID == nil)
        #expect(try queries.pastMemory(vm: vm + 1, at: .event(1)) == .failure(.noVM))
    }
}
