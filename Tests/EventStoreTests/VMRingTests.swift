import Foundation
import Logging
import MemoryModel
import SQLite
import Testing

@testable import EventStore

/// A VM process's ring and its records: written by one process, drained by the agent into the store.
@Suite struct VMRingTests {
    func conversion(_ decision: ConversionDecision = .pending, vmID: Int64 = 1, name: String = "vm") -> ConversionRecord
    {
        var record = ConversionRecord(
            vmID: vmID, vm: name, vcpu: 2, requestedNanos: 1_000, completedNanos: decision == .pending ? nil : 2_000,
            gpa: 0x20_0000, size: 4096, direction: .toShared, trigger: .explicit, decision: decision,
            reason: "default (allow)", policyVersion: "v1", source: .emulated, changedBytes: 4096,
            discardedBytes: 0, guestResult: 0)
        record.requestedPages = decision == .invalid ? 7 : nil
        return record
    }

    var everyKind: [VMRecord] {
        [
            .fault(
                MemoryFaultRecord(
                    vmID: 1, vm: "vm", vcpu: 1, timeNanos: 5, gpa: 0x30_0000, size: 4096, flags: 8, source: .kvm,
                    access: .write)),
            .fault(
                MemoryFaultRecord(
                    vmID: 1, vm: "vm", vcpu: 0, timeNanos: 6, gpa: 0x30_0000, size: 4096, flags: 0, source: .emulated)),
            .conversion(conversion(.invalid)),
            .begin(sequence: 9, conversion()),
            .finish(
                sequence: 9, decision: .applied, reason: nil, completedNanos: 3_000, discardedBytes: 4096,
                guestResult: 0),
            .finish(
                sequence: 10, decision: .failed, reason: "no memory", completedNanos: 3_000, discardedBytes: 0,
                guestResult: -12),
            .aggregate(EventAggregate(vmID: 1, second: 1_800_000_000, kind: .denied, events: 42)),
            .lifecycle(.started, timeNanos: 11),
            .lifecycle(.paused, timeNanos: 12),
            .ended(
                VMEnding(
                    state: "stopped", reason: "guest exited", exitStatus: 0,
                    runs: [(0x20_0000, 0x21_0000, .shared), (0x21_0000, 0x40_0000, .private)],
                    statistics: Array(#"{"a":1}"#.utf8), consoleTail: Array("bye\n".utf8), consoleBytes: 9000)),
        ]
    }

    @Test func everyRecordRoundTripsAndNothingElseDecodes() throws {
        for record in everyKind {
            let bytes = record.encoded()
            #expect(VMRecord.decode(bytes, vmID: 1, name: "vm") == record)
            // Cut short, or with bytes after it: not a record.
            #expect(VMRecord.decode(Array(bytes.dropLast()), vmID: 1, name: "vm") == nil)
            #expect(VMRecord.decode(bytes + [0], vmID: 1, name: "vm") == nil)
        }
        #expect(VMRecord.decode([], vmID: 1, name: "vm") == nil)
        #expect(VMRecord.decode([99, 0, 0], vmID: 1, name: "vm") == nil)
        // A name no version of the codec wrote (a direction that does not exist) is refused.
        var unknown = VMRecord.conversion(conversion()).encoded()
        if let at = unknown.firstRange(of: Array("to_shared".utf8)) {
            unknown.replaceSubrange(at, with: Array("to_sharer".utf8))
        }
        #expect(VMRecord.decode(unknown, vmID: 1, name: "vm") == nil)
    }

    @Test func aBeginAndItsFinishInOneDrainBecomeOneFinalRow() {
        let finished = VMRecord.finish(
            sequence: 1, decision: .applied, reason: nil, completedNanos: 9, discardedBytes: 4096, guestResult: 0)
        let lone = VMRecord.finish(
            sequence: 7, decision: .failed, reason: "ENOMEM", completedNanos: 9, discardedBytes: 0, guestResult: -12)
        let out = VMRecord.coalesced([
            .begin(sequence: 1, conversion()), .begin(sequence: 2, conversion()), finished, lone,
        ])
        #expect(out.count == 3)
        guard case .begin(1, let first) = out[0], case .begin(2, let second) = out[1] else {
            Issue.record("\(out)")
            return
        }
        #expect(
            first.decision == .applied && first.completedNanos == 9 && first.discardedBytes == 4096
                && first.reason == "default (allow)")
        #expect(second.decision == .pending, "its finish is in a later drain")
        #expect(out[2] == lone, "a finish whose begin an earlier drain committed stays a finish")
    }

    func temporaryRing(capacity: Int = VMRing.minimumCapacity) throws -> (VMRing, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vmring-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("vm-1.ring").path
        return (try VMRing.create(path: path, vmID: 1, capacity: capacity), path)
    }

    @Test func aFullRingRefusesUntilItsReaderCatchesUpAndWrapsWhole() throws {
        let (ring, path) = try temporaryRing()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let payload = [UInt8](repeating: 0xAB, count: 1000)
        var written = 0
        while ring.tryAppend(payload + [UInt8(written & 0xFF)]) { written += 1 }
        #expect(written == VMRing.minimumCapacity / VMRing.padded(1001))
        // The reader (the agent, another mapping of the same file) sees them all, in order.
        let reader = try VMRing.open(path: path, vmID: 1)
        var seen = 0
        for _ in 0..<200 {  // many laps around the ring: every record whole, in order, across the wrap
            let pending = try #require(reader.pending())
            for item in pending {
                #expect(
                    item.payload.count == 1001 && item.payload.last == UInt8(seen & 0xFF) && item.payload.first == 0xAB)
                seen += 1
            }
            if let end = pending.last?.end { reader.markRead(end) }
            while ring.tryAppend(payload + [UInt8(written & 0xFF)]) { written += 1 }
        }
        #expect(seen > 200 && written - seen <= VMRing.minimumCapacity / VMRing.padded(1001))
        // Too big for the ring: refused at once, never waited for.
        #expect(!ring.append([UInt8](repeating: 0, count: VMRing.minimumCapacity)))
    }

    @Test func aWaitForRoomIsCountedAndEndsWhenTheReaderFreesIt() throws {
        let (ring, path) = try temporaryRing()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let payload = [UInt8](repeating: 1, count: 4000)
        while ring.tryAppend(payload) {}
        let reader = try VMRing.open(path: path, vmID: 1)
        let done = DispatchSemaphore(value: 0)
        let waiting = DispatchSemaphore(value: 0)
        Thread {
            // Asked once per try that found no room: the first one tells the test the writer waits.
            var told = false
            #expect(
                ring.append(
                    payload,
                    shouldGiveUp: {
                        if !told {
                            told = true
                            waiting.signal()
                        }
                        return false
                    }))
            done.signal()
        }.start()
        // The writer waits while the ring is full; freeing the first record lets it in.
        waiting.wait()
        let first = try #require(reader.pending(limit: 1)?.first)
        reader.markRead(first.end)
        done.wait()
        #expect(ring.fullWaits.count == 1)
        #expect(ring.fullWaits.nanos > 0)
        // A wait told to give up returns false and writes nothing.
        let before = ring.writePosition
        #expect(!ring.append(payload, shouldGiveUp: { true }))
        #expect(ring.writePosition == before)
    }

    @Test func corruptBytesAreNotRecords() throws {
        let (ring, path) = try temporaryRing()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(ring.tryAppend(Array("hello".utf8)))
        // Flip a payload byte in the file: the checksum no longer matches.
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(VMRing.headerSize + 8))
        try handle.write(contentsOf: [UInt8(ascii: "j")])
        try handle.close()
        #expect(try VMRing.open(path: path, vmID: 1).pending() == nil)
        // A ring of another VM, or a file that is not a ring, is refused.
        #expect(throws: EventRingError.self) { try VMRing.open(path: path, vmID: 2) }
        let other = (path as NSString).deletingLastPathComponent + "/short"
        #expect(FileManager.default.createFile(atPath: other, contents: Data(count: 4096)))
        #expect(throws: EventRingError.self) { try VMRing.open(path: other, vmID: 1) }
        // Never through a link.
        let link = (path as NSString).deletingLastPathComponent + "/link.ring"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        #expect(throws: EventRingError.self) { try VMRing.open(path: link, vmID: 1) }
    }

    /// The drain's half in the store: ids in commit order, a finish across two drains and across a
    /// restart (found by the VM's own number), and the read position stored with the rows.
    @Test func ingestGivesIdsInOrderAndFinishesAcrossARestart() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        do {
            let store = try EventStore(path: path, logger: quietLogger)
            try store.register(
                VMRegistration(
                    name: "vm", memoryBytes: 4 << 20, vcpus: 1, backend: "alias",
                    dataRAM: PageRange(start: 0x20_0000, end: 0x40_0000), initialState: .private),
                id: store.reserveVMID(), createdNanos: 1)
            var pending: [UInt64: Int64] = [:]
            let first = store.ingest(
                vmID: 1,
                records: [
                    .begin(sequence: 1, conversion()), .begin(sequence: 2, conversion()),
                    .finish(
                        sequence: 1, decision: .applied, reason: nil, completedNanos: 5,
                        discardedBytes: 0, guestResult: 0),
                ],
                through: 300, pending: &pending)
            #expect(store.waitCommitted(first) == nil)
            #expect(pending.count == 1 && pending[2] != nil)
            store.close()
        }
        // A new agent: its pending map comes from the store, and the finish of conversion 2 finds its row.
        let store = try EventStore(path: path, closeLostVMs: false, logger: quietLogger)
        defer { store.close() }
        var pending = try store.pendingVMConversions()[1] ?? [:]
        #expect(pending.count == 1)
        let second = store.ingest(
            vmID: 1,
            records: [
                .finish(
                    sequence: 2, decision: .applied, reason: nil, completedNanos: 6,
                    discardedBytes: 0, guestResult: 0),
                .fault(
                    MemoryFaultRecord(
                        vmID: 1, vm: "vm", vcpu: 0, timeNanos: 7, gpa: 0x20_0000,
                        size: 4096, flags: 0, source: .emulated)),
            ],
            through: 500, pending: &pending)
        #expect(store.waitCommitted(second) == nil)
        let connection = try SQLiteConnection(path: path, readOnly: true)
        #expect(
            try connection.query("SELECT event_id, vm_seq, decision FROM conversions ORDER BY event_id")
                == [[.integer(2), .integer(1), .text("applied")], [.integer(3), .integer(2), .text("applied")]])
        #expect(try connection.scalar("SELECT event_id FROM memory_faults") == 4)
        #expect(try connection.scalar("SELECT ring_read FROM vms WHERE vm_id = 1") == 500)
        // The VM is still running (not closed as lost): its agent adopts it.
        #expect(try store.storedVMs().first?.endedNanos == nil)
    }
}
