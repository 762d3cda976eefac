import Foundation
import KVM
import Logging
import Platform
import SQLite
import Synchronization
import TestSupport
import Testing

@testable import EventStore
@testable import MemoryModel
@testable import VMM

/// Sends every event to the in-memory sink and to the store, so the two can be compared.
final class TeeSink: EventSink {
    let memory = InMemoryEventSink()
    let store: EventStore
    private let tickets = Mutex<[UInt64: ConversionTicket]>([:])

    init(store: EventStore) { self.store = store }

    func record(fault: MemoryFaultRecord) -> EventReceipt {
        _ = memory.record(fault: fault)
        return store.record(fault: fault)
    }

    func record(conversion: ConversionRecord) -> EventReceipt {
        _ = memory.record(conversion: conversion)
        return store.record(conversion: conversion)
    }

    func begin(conversion: ConversionRecord) -> PendingConversion {
        let inMemory = memory.begin(conversion: conversion)
        let stored = store.begin(conversion: conversion)
        tickets.withLock { $0[stored.ticket.id] = inMemory.ticket }
        return stored
    }

    func record(aggregate: EventAggregate) {
        memory.record(aggregate: aggregate)
        store.record(aggregate: aggregate)
    }

    func finish(
        _ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
        discardedBytes: UInt64, guestResult: Int64
    ) {
        let inMemory = tickets.withLock { $0.removeValue(forKey: ticket.id) }!
        memory.finish(
            inMemory, decision: decision, reason: reason, completedNanos: completedNanos,
            discardedBytes: discardedBytes, guestResult: guestResult)
        store.finish(
            ticket, decision: decision, reason: reason, completedNanos: completedNanos,
            discardedBytes: discardedBytes, guestResult: guestResult)
    }
}

/// Runs guests on the real /dev/kvm with the store attached.
struct RecordedRun {
    let system: KVM.System

    init() throws { system = try KVM.System() }

    @discardableResult
    func run(
        _ guest: String, name: String, commandLine: String = "", policy: String? = nil, sink: EventSink,
        store: EventStore, vcpus: Int = 1
    ) throws -> VirtualMachine {
        var configuration = VMConfiguration(name: name)
        configuration.memoryBytes = 32 << 20
        configuration.vcpuCount = vcpus
        configuration.commandLine = commandLine
        configuration.backend = .alias
        configuration.id = store.reserveVMID()
        let versioned = try policy.map { try VersionedPolicy(document: Array($0.utf8)) } ?? .builtIn
        try store.recordPolicy(
            versioned, change: PolicyChange(principal: "test", channel: "api"), atNanos: MonotonicClock.wallNanos())
        let image = try ELFLoader.parse(
            try TestSupport.guestBytes(guest), loadable: BootLayout.imageBase..<configuration.memoryBytes)
        let vm = try VirtualMachine(
            system: system, configuration: configuration, image: image, logger: quietLogger,
            policies: PolicyStore(versioned), events: sink)
        try store.register(
            VMRegistration(
                name: name, memoryBytes: configuration.memoryBytes, vcpus: vcpus,
                backend: vm.backendKind.rawValue, dataRAM: vm.pageStates.bounds,
                initialState: .private), id: configuration.id, createdNanos: MonotonicClock.wallNanos())
        try vm.start()
        store.vmStarted(configuration.id, atNanos: MonotonicClock.wallNanos())
        #expect(vm.waitUntilFinished(timeout: .seconds(60)))
        let outcome = vm.lifecycle
        store.vmEnded(
            configuration.id, atNanos: MonotonicClock.wallNanos(), state: outcome.state.rawValue,
            reason: outcome.reason,
            exitStatus: outcome.exitStatus, layout: vm.pageStates)
        return vm
    }
}

@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct RecordingTests {
    /// The rows in SQLite are exactly the events the VMM produced, in event-id order.
    @Test func recordedRowsEqualTheInMemoryEvents() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: quietLogger)
        let tee = TeeSink(store: store)
        let runner = try RecordedRun()
        try runner.run("implicit", name: "implicit-1", sink: tee, store: store)
        try runner.run(
            "explicit", name: "explicit-1", commandLine: "0:2:0 1:1:0 10000:1:0 0:1:10",
            policy: #"{"rules":[{"match":{"gpa":["0x210000","0x211000"]},"action":"deny","reason":"pinned"}]}"#,
            sink: tee, store: store)
        store.close()

        let connection = try SQLiteConnection(path: path, readOnly: true)
        let vmNames = Dictionary(
            uniqueKeysWithValues: try connection.query("SELECT vm_id, name FROM vms").map { row -> (Int64, String) in
                guard case .integer(let id) = row[0], case .text(let name) = row[1] else { return (0, "") }
                return (id, name)
            })
        var rows: [(Int64, InMemoryEventSink.Event)] = []
        for row in try connection.query(
            "SELECT event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access FROM memory_faults")
        {
            guard case .integer(let id) = row[0], case .integer(let vm) = row[1], case .integer(let vcpu) = row[2],
                case .integer(let time) = row[3], case .integer(let gpa) = row[4], case .integer(let size) = row[5],
                case .integer(let flags) = row[6], case .text(let source) = row[7]
            else {
                Issue.record("bad fault row \(row)")
                continue
            }
            var access: FaultAccess?
            if case .text(let text) = row[8] { access = FaultAccess(rawValue: text) }
            rows.append(
                (
                    id,
                    .fault(
                        MemoryFaultRecord(
                            vmID: vm, vm: vmNames[vm] ?? "?", vcpu: UInt32(vcpu), timeNanos: UInt64(time),
                            gpa: UInt64(gpa),
                            size: UInt64(size), flags: UInt64(flags), source: EventSource(rawValue: source)!,
                            access: access))
                ))
        }
        for row in try connection.query(
            """
            SELECT event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision, reason,
                   policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages FROM conversions
            """)
        {
            guard case .integer(let id) = row[0], case .integer(let vm) = row[1], case .integer(let vcpu) = row[2],
                case .integer(let requested) = row[3], case .integer(let gpa) = row[5],
                case .integer(let size) = row[6],
                case .text(let direction) = row[7], case .text(let trigger) = row[8], case .text(let decision) = row[9],
                case .text(let reason) = row[10], case .text(let version) = row[11], case .text(let source) = row[12],
                case .integer(let changed) = row[13], case .integer(let discarded) = row[14],
                case .integer(let result) = row[15]
            else {
                Issue.record("bad conversion row \(row)")
                continue
            }
            var completed: UInt64?
            if case .integer(let value) = row[4] { completed = UInt64(value) }
            var requestedPages: UInt64?
            if case .integer(let value) = row[16] { requestedPages = UInt64(value) }
            var record = ConversionRecord(
                vmID: vm, vm: vmNames[vm] ?? "?", vcpu: UInt32(vcpu), requestedNanos: UInt64(requested),
                completedNanos: completed,
                gpa: UInt64(bitPattern: gpa), size: UInt64(bitPattern: size),
                direction: ConversionDirection(rawValue: direction)!,
                trigger: ConversionTrigger(rawValue: trigger)!, decision: ConversionDecision(rawValue: decision)!,
                reason: reason,
                policyVersion: version, source: EventSource(rawValue: source)!, changedBytes: UInt64(changed),
                discardedBytes: UInt64(discarded), guestResult: result)
            record.requestedPages = requestedPages
            rows.append((id, .conversion(record)))
        }
        let stored = rows.sorted { $0.0 < $1.0 }
        // Faults, conversions, VM lifecycle events and policy applications share one gap-free id sequence.
        let others = try connection.query(
            "SELECT event_id FROM vm_events UNION ALL SELECT event_id FROM policy_applications"
        )
        .compactMap { row -> Int64? in if case .integer(let id) = row[0] { id } else { nil } }
        let every = (stored.map(\.0) + others).sorted()
        #expect(every == Array(1...Int64(every.count)), "event ids are one gap-free sequence")
        #expect(others.count == 2 * 3 + 2, "created, started and ended for each VM, and each run's policy")
        #expect(stored.map(\.1) == tee.memory.events)
        #expect(tee.memory.conversions.map(\.decision) == [.applied, .applied, .applied, .invalid, .denied, .applied])
    }

    /// A reader (the sqlite3 CLI) reads while a VM writes: WAL keeps both going.
    @Test func sqliteReaderWhileTheAgentWrites() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: quietLogger)
        let runner = try RecordedRun()
        let reads = Mutex<[String]>([])
        let readerDone = Mutex(false)
        let reader = Thread {
            for _ in 0..<40 {
                if let result = try? TestSupport.run("/usr/bin/sqlite3", [path, "SELECT count(*) FROM conversions;"]) {
                    reads.withLock {
                        $0.append(
                            result.status == 0
                                ? result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                                : "error: \(result.stderr)")
                    }
                }
                usleep(5000)
            }
            readerDone.withLock { $0 = true }
        }
        reader.start()
        try runner.run("churn", name: "churn", commandLine: "600", sink: store, store: store)
        for _ in 0..<3000 where !readerDone.withLock({ $0 }) { usleep(1000) }
        store.close()
        let seen = reads.withLock { $0 }
        #expect(seen.count == 40)
        #expect(seen.allSatisfy { Int($0) != nil }, "\(seen.filter { Int($0) == nil })")
        let counts = seen.compactMap { Int($0) }
        #expect(counts == counts.sorted(), "a reader never sees the count go backwards")
        #expect(try SQLiteConnection(path: path, readOnly: true).scalar("SELECT count(*) FROM conversions") == 600)
    }

    /// Every ```sql block of the README's audit section runs against a populated database.
    @Test func readmeAuditQueriesRun() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: quietLogger)
        let runner = try RecordedRun()
        try runner.run("implicit", name: "tenant-a-1", sink: store, store: store)
        try runner.run(
            "implicit", name: "tenant-b-1",
            policy:
                #"{"rules":[{"match":{"trigger":"implicit","direction":"to_private"},"action":"deny","reason":"no implicit privatizing"}]}"#,
            sink: store, store: store)
        try runner.run("explicit", name: "tenant-c-1", commandLine: "0:4:0 0:1:10", sink: store, store: store)
        // A conversion whose agent died before finishing it.
        let interruptedID = try store.register(
            VMRegistration(
                name: "interrupted", memoryBytes: 32 << 20, vcpus: 1, backend: "alias",
                dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
            createdNanos: MonotonicClock.wallNanos())
        let pending = store.begin(
            conversion: ConversionRecord(
                vmID: interruptedID, vm: "interrupted", vcpu: 0, requestedNanos: MonotonicClock.wallNanos(),
                completedNanos: nil, gpa: 0x30_0000,
                size: 4096, direction: .toShared, trigger: .explicit, decision: .pending,
                reason: "default explicit allow",
                policyVersion: VersionedPolicy.builtIn.version, source: .emulated, changedBytes: 4096,
                discardedBytes: 0, guestResult: 0))
        #expect(pending.receipt.wait() == nil)
        // Invalid requests counted beyond the VM's recording budget.
        store.record(
            aggregate: EventAggregate(
                vmID: interruptedID, second: MonotonicClock.wallNanos() / 1_000_000_000,
                kind: .invalid, events: 12))
        // Refused API requests, counted.
        store.recordRefusals([
            RefusalCount(
                second: MonotonicClock.wallNanos() / 1_000_000_000, peer: "192.0.2.7",
                kind: .unauthenticated, requests: 4000)
        ])
        store.close()

        let queries = try TestSupport.readmeQueries(section: "Event store and audit SQL")
        #expect(queries.count >= 6)
        let connection = try SQLiteConnection(path: path, readOnly: true)
        for query in queries {
            #expect(!(try connection.query(query)).isEmpty, "no rows from:\n\(query)")
        }
    }

    @Test func pruneKeepsVMsStillKnown() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: quietLogger)
        let runner = try RecordedRun()
        try runner.run("implicit", name: "ended", sink: store, store: store)
        let runningID = try store.register(
            VMRegistration(
                name: "running", memoryBytes: 32 << 20, vcpus: 1, backend: "alias",
                dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
            createdNanos: 1)
        _ = store.record(
            fault: MemoryFaultRecord(
                vmID: runningID, vm: "running", vcpu: 0, timeNanos: 1, gpa: 0x20_0000, size: 4096, flags: 0,
                source: .emulated)
        ).wait()
        store.close()
        let report = try Maintenance.prune(path: path, olderThan: MonotonicClock.wallNanos() + 1)
        #expect(report.faults == 2 && report.conversions == 2 && report.vms == 1)
        let connection = try SQLiteConnection(path: path, readOnly: true)
        #expect(try connection.scalar("SELECT count(*) FROM memory_faults") == 1)  // the running VM's, although old
        #expect(try connection.scalar("SELECT count(*) FROM vms") == 1)
        #expect(try Maintenance.check(path: path).integrity == "ok")
    }
}
