import Foundation
import Logging
import MemoryModel
import SQLite
import Testing

@testable import EventStore

/// The event ring: records durable without a wait, applied by the next agent.
@Suite struct RingTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func conversionWrite(id: Int64, vmID: Int64, decision: String = "pending") -> EventWriter.Write {
        EventWriter.Write(
            .insertConversion,
            values: [
                .integer(id), .integer(vmID), .integer(0), .unsigned(1_000), .null, .unsigned(0x20_0000),
                .unsigned(4096),
                .text("to_shared"), .text("explicit"), .text(decision), .text("default (allow)"), .text("v1"),
                .text("emulated"),
                .unsigned(4096), .unsigned(0), .integer(0),
            ])
    }

    func finishWrite(id: Int64) -> EventWriter.Write {
        EventWriter.Write(
            .finishConversion,
            values: [
                .text("applied"), .null, .unsigned(2_000), .unsigned(4096), .integer(0), .integer(id),
            ])
    }

    @Test func theMappedFileKeepsEveryAccessInsideTheMapping() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mapped-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("file").path
        do {
            let file = try MappedFile(path: path, size: 4096)
            file.store(UInt64(0x1122_3344_5566_7788), at: 4088)
            file.write([1, 2, 3], at: 10)
            // Past the end, or straddling it: nothing is read or written.
            file.store(UInt64.max, at: 4089)
            file.write([9, 9], at: 4095)
            file.write([9], at: -1)
            #expect(file.load(UInt64.self, at: 4088) == 0x1122_3344_5566_7788)
            #expect(file.load(UInt32.self, at: 4093) == 0)
            #expect(file.bytes(at: 10, count: 3) == [1, 2, 3])
            #expect(file.bytes(at: 4095, count: 2) == [])
            #expect(file.bytes(at: 4095, count: 1) == [0x11])  // the stored value's top byte, untouched
        }
        // MAP_SHARED: what was stored is in the file once the mapping is gone.
        let reopened = try MappedFile(path: path, size: 4096)
        #expect(reopened.load(UInt64.self, at: 4088) == 0x1122_3344_5566_7788)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 4096)
    }

    @Test func codecRoundTripsEventStatementsAndRefusesAnythingElse() throws {
        let writes = [conversionWrite(id: 7, vmID: 1), finishWrite(id: 7)]
        let bytes = try #require(EventRingCodec.encode(writes))
        let decoded = try #require(EventRingCodec.decode(bytes))
        #expect(decoded.map(\.sql) == writes.map(\.sql))
        #expect(decoded.map(\.values) == writes.map(\.values))
        // Only event statements travel through the ring.
        #expect(EventRingCodec.encode([EventWriter.Write(sql: "DELETE FROM vms", values: [])]) == nil)
        // A record cut short, or with a statement index nobody knows, is not a record.
        #expect(EventRingCodec.decode(Array(bytes.dropLast())) == nil)
        var unknown = bytes
        unknown[2] = 200
        #expect(EventRingCodec.decode(unknown) == nil)
        #expect(EventRingCodec.checksum(bytes) != EventRingCodec.checksum(Array(bytes.dropLast())))
    }

    @Test func aFullRingRefusesUntilTheDatabaseCatchesUp() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let ring = try EventRing(databasePath: path, slotSize: 256, slotCount: 4)
        let record = try #require(EventRingCodec.encode([finishWrite(id: 1)]))
        for expected in 1...4 { #expect(ring.append(record) == UInt64(expected)) }
        #expect(ring.append(record) == nil)  // slot 1 still holds a record SQLite lacks
        ring.markIngested(2)
        #expect(ring.append(record) == 5)
        #expect(ring.unIngested().count == 3)
        // Too big for a slot: refused, so the caller waits for SQLite instead.
        #expect(ring.append([UInt8](repeating: 0, count: 300)) == nil)
        let file = try FileManager.default.attributesOfItem(atPath: path + "-ring")
        #expect((file[.posixPermissions] as? Int) == 0o600)
    }

    /// An agent killed with records in the ring but not in SQLite: the next agent
    /// applies them first (in order, skipping rows already committed).
    @Test func theNextAgentAppliesWhatADeadOneLeftInTheRing() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        var vmID: Int64 = 0
        do {
            let store = try EventStore(path: path, logger: logger)
            vmID = try store.register(
                VMRegistration(
                    name: "ringed", memoryBytes: 32 << 20, vcpus: 1, backend: "alias",
                    dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
                createdNanos: 1)
            store.close()
        }
        // What a dead agent leaves: an applied conversion (insert + finish), one still pending,
        // and a record of a row SQLite already has.
        do {
            let ring = try EventRing(databasePath: path)
            for writes in [
                [conversionWrite(id: 100, vmID: vmID)], [finishWrite(id: 100)], [conversionWrite(id: 101, vmID: vmID)],
                [conversionWrite(id: 100, vmID: vmID)],
            ] {
                #expect(ring.append(try #require(EventRingCodec.encode(writes))) != nil)
            }
        }
        let store = try EventStore(path: path, logger: logger)
        #expect(store.recovered.replayedRecords == 4)
        // The VM never ended: it is lost, and its pending conversion incomplete.
        #expect(store.recovered.vms == 1 && store.recovered.incompleteConversions == 1)
        store.close()
        let connection = try SQLiteConnection(path: path, readOnly: true)
        let rows = try connection.query("SELECT event_id, decision FROM conversions ORDER BY event_id")
        #expect(rows == [[.integer(100), .text("applied")], [.integer(101), .text("incomplete")]])
        // New ids continue after the recovered ones.
        let again = try EventStore(path: path, logger: logger)
        defer { again.close() }
        #expect(again.recovered.replayedRecords == 0)
        let ticket = again.begin(
            conversion: ConversionRecord(
                vmID: vmID, vm: "ringed", vcpu: 0, requestedNanos: 3, completedNanos: nil, gpa: 0x20_0000, size: 4096,
                direction: .toPrivate, trigger: .explicit, decision: .pending, reason: "r", policyVersion: "v",
                source: .emulated,
                discardedBytes: 0, guestResult: 0)
        ).ticket
        #expect(ticket.id == 102)
    }
}
