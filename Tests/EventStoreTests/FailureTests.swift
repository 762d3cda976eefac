import Foundation
import Logging
import MemoryModel
import SQLite
import Synchronization
import Testing

@testable import EventStore

/// Recording failures are final and visible.
@Suite struct FailureTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func conversion(gpa: UInt64, vmID: Int64) -> ConversionRecord {
        ConversionRecord(
            vmID: vmID, vm: "f", vcpu: 0, requestedNanos: 1, completedNanos: 2, gpa: gpa, size: 4096,
            direction: .toShared, trigger: .explicit, decision: .denied, reason: "r", policyVersion: "v",
            source: .emulated, discardedBytes: 0, guestResult: -1)
    }

    /// A batch fails (a trigger stands in for a full disk): its waiter hears so, and so does
    /// every later one: a later good batch never moves the committed mark past it.
    @Test(arguments: [Durability.full, .normal])
    func aFailedBatchIsFinal(durability: Durability) throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        _ = try Maintenance.migrate(path: path)
        try SQLiteConnection(path: path).execute(
            """
            CREATE TRIGGER injected_failure BEFORE INSERT ON conversions WHEN NEW.gpa = 57005
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END
            """)
        let store = try EventStore(path: path, durability: durability, logger: logger)
        defer { store.close() }
        let vmID = try store.register(
            VMRegistration(
                name: "f", memoryBytes: 1 << 25, vcpus: 1, backend: "alias",
                dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
            createdNanos: 1)
        let heard = Mutex<[RecordingFailure]>([])
        store.onFailure { failure in heard.withLock { $0.append(failure) } }
        let bad = store.record(conversion: conversion(gpa: 57005, vmID: vmID))
        if durability == .full {
            #expect(bad.wait()?.message.contains("injected failure") == true)
        } else {
            // Durable in the ring at once; the commit fails behind it.
            #expect(bad.wait() == nil)
            store.flush()
        }
        // A typed failure: the operation, SQLite's own result code (SQLITE_CONSTRAINT_TRIGGER) and its message.
        let failure = try #require(store.failure)
        #expect(failure.message.contains("injected failure") && failure.code == 1811, "\(failure)")
        let later = store.record(conversion: conversion(gpa: 0x20_0000, vmID: vmID))
        #expect(later.wait() == failure)
        // The handler runs on the writer thread just after the failure is visible.
        for _ in 0..<30_000 where heard.withLock({ $0 }).isEmpty { usleep(1000) }
        #expect(heard.withLock { $0 } == [failure])
        // Nothing after the failure reached the tables.
        let rows = try SQLiteConnection(path: path, readOnly: true).scalar("SELECT count(*) FROM conversions")
        #expect(rows == 0)
    }
}
