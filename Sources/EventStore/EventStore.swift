import Foundation
import Logging
import MemoryModel
import Synchronization

/// How hard a commit tries to reach the disk (`PRAGMA synchronous`).
public enum Durability: String, Sendable, CaseIterable {
    /// WAL + NORMAL: a committed event survives the agent process dying (kill -9, crash).
    case normal
    /// WAL + FULL: a committed event also survives power loss or a kernel crash.
    case full
}

/// What the store keeps about a VM when it is created.
public struct VMRegistration: Sendable {
    public var name: String
    public var labels: [String: String] = [:]
    public var memoryBytes: UInt64
    public var vcpus: Int
    public var backend: String
    public var dataRAM: PageRange
    public var initialState: PageState

    public init(name: String, labels: [String: String] = [:], memoryBytes: UInt64, vcpus: Int, backend: String,
                dataRAM: PageRange, initialState: PageState) {
        self.name = name; self.labels = labels; self.memoryBytes = memoryBytes; self.vcpus = vcpus
        self.backend = backend; self.dataRAM = dataRAM; self.initialState = initialState
    }
}

/// The SQLite event store: records every memory fault and conversion, commits
/// each before the vCPU that caused it resumes (group-committed across vCPUs),
/// and keeps VMs and policy versions for audit.
public final class EventStore: EventSink {
    public let path: String
    private let writer: EventWriter
    /// Held for the store's life: event and VM ids are allocated in this process.
    private let ownership: WriterLock
    private struct IDs {
        var nextEvent: Int64
        var nextVM: Int64
        var vms: [String: Int64] = [:]
    }
    private let ids: Mutex<IDs>

    static let insertFault = """
        INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let insertConversion = """
        INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision,
                                 reason, policy_version, source, changed_bytes, discarded_bytes, guest_result)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let finishConversion = """
        UPDATE conversions SET decision = ?, reason = coalesce(?, reason), completed_ns = ?, discarded_bytes = ?, guest_result = ?
        WHERE event_id = ?
        """

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String, durability: Durability = .normal, migrations: [Migration]? = nil,
                logger: Logger) throws(EventStoreError) {
        self.path = path
        ownership = try WriterLock(databasePath: path)
        let (initial, writer) = try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            try connection.execute("PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
            try connection.execute("PRAGMA foreign_keys = ON")
            try Migrator.migrate(connection, try migrations ?? Migrator.bundled())
            let lastEvent = try connection.scalar("SELECT max(coalesce((SELECT max(event_id) FROM memory_faults), 0), coalesce((SELECT max(event_id) FROM conversions), 0))") ?? 0
            let lastVM = try connection.scalar("SELECT coalesce(max(vm_id), 0) FROM vms") ?? 0
            return (IDs(nextEvent: lastEvent + 1, nextVM: lastVM + 1), EventWriter(connection: connection, logger: logger))
        }
        ids = Mutex(initial)
        self.writer = writer
    }

    /// Commits what is queued and stops the writer.
    public func close() { writer.close() }

    /// Transactions committed so far (each may hold many events).
    public var commitCount: UInt64 { writer.batches }

    private func receipt(_ sequence: UInt64) -> EventReceipt {
        EventReceipt { [writer] in writer.waitCommitted(sequence) }
    }

    private func vmID(_ name: String, _ ids: IDs) -> Int64 {
        // Callers register a VM before it runs. An unregistered name maps to 0, which the
        // vms foreign key rejects: the batch fails and recording stops, loudly, rather than
        // filing events under the wrong VM.
        ids.vms[name] ?? 0
    }

    // MARK: VMs and policies

    /// Records a new VM and returns its id; events for `registration.name` go to it from now on.
    @discardableResult
    public func register(_ registration: VMRegistration, createdNanos: UInt64) throws(EventStoreError) -> Int64 {
        let labels = (try? JSONSerialization.data(withJSONObject: registration.labels, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let (id, sequence) = writer.enqueue { () -> (Int64, [EventWriter.Write]) in
            ids.withLock { ids in
                let id = ids.nextVM
                ids.nextVM += 1
                ids.vms[registration.name] = id
                return (id, [EventWriter.Write(sql: """
                    INSERT INTO vms (vm_id, name, labels, memory_bytes, vcpus, backend, data_ram_start, data_ram_size,
                                     initial_state, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, values: [.integer(id), .text(registration.name), .text(labels), .unsigned(registration.memoryBytes),
                                  .integer(Int64(registration.vcpus)), .text(registration.backend),
                                  .unsigned(registration.dataRAM.start), .unsigned(registration.dataRAM.size),
                                  .text(registration.initialState.rawValue), .unsigned(createdNanos)])])
            }
        }
        if let failure = writer.waitCommitted(sequence) { throw .migrations(failure) }
        return id
    }

    public func vmStarted(_ name: String, atNanos time: UInt64) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            let id = ids.withLock { vmID(name, $0) }
            return ((), [EventWriter.Write(sql: "UPDATE vms SET started_ns = ? WHERE vm_id = ?", values: [.unsigned(time), .integer(id)])])
        }
    }

    /// Records how a VM ended and its final private/shared layout; waits until durable.
    public func vmEnded(_ name: String, atNanos time: UInt64, state: String, reason: String?, exitStatus: Int32?,
                        layout: PageStateMap) {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            let id = ids.withLock { ids in
                defer { ids.vms[name] = nil }
                return vmID(name, ids)
            }
            var writes = [EventWriter.Write(sql: """
                UPDATE vms SET ended_ns = ?, final_state = ?, final_reason = ?, exit_status = ? WHERE vm_id = ?
                """, values: [.unsigned(time), .text(state), reason.map { .text($0) } ?? .null,
                              exitStatus.map { .integer(Int64($0)) } ?? .null, .integer(id)])]
            for run in layout.runs {
                writes.append(EventWriter.Write(sql: "INSERT INTO memory_layout (vm_id, start_gpa, end_gpa, state) VALUES (?, ?, ?, ?)",
                                                values: [.integer(id), .unsigned(run.range.start), .unsigned(run.range.end),
                                                         .text(run.state.rawValue)]))
            }
            return ((), writes)
        }
        _ = writer.waitCommitted(sequence)
    }

    /// Records that `policy` was applied (its first application also stores the document).
    public func recordPolicy(_ policy: VersionedPolicy, appliedBy: String, atNanos time: UInt64) throws(EventStoreError) {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), [
                EventWriter.Write(sql: "INSERT OR IGNORE INTO policies (version, document, first_applied_ns) VALUES (?, ?, ?)",
                                  values: [.text(policy.version), .text(String(decoding: policy.document, as: UTF8.self)), .unsigned(time)]),
                EventWriter.Write(sql: "INSERT INTO policy_applications (version, applied_ns, applied_by) VALUES (?, ?, ?)",
                                  values: [.text(policy.version), .unsigned(time), .text(appliedBy)]),
            ])
        }
        if let failure = writer.waitCommitted(sequence) { throw .migrations(failure) }
    }

    // MARK: EventSink

    public func record(fault: MemoryFaultRecord) -> EventReceipt {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ids.withLock { ids in
                let id = ids.nextEvent
                ids.nextEvent += 1
                return ((), [EventWriter.Write(sql: Self.insertFault, values: [
                    .integer(id), .integer(vmID(fault.vm, ids)), .integer(Int64(fault.vcpu)), .unsigned(fault.timeNanos),
                    .unsigned(fault.gpa), .unsigned(fault.size), .unsigned(fault.flags), .text(fault.source.rawValue),
                ])])
            }
        }
        return receipt(sequence)
    }

    private func insert(_ conversion: ConversionRecord) -> (ConversionTicket, UInt64) {
        writer.enqueue { () -> (ConversionTicket, [EventWriter.Write]) in
            ids.withLock { ids in
                let id = ids.nextEvent
                ids.nextEvent += 1
                return (ConversionTicket(id: UInt64(id)), [EventWriter.Write(sql: Self.insertConversion, values: [
                    .integer(id), .integer(vmID(conversion.vm, ids)), .integer(Int64(conversion.vcpu)),
                    .unsigned(conversion.requestedNanos), .optional(conversion.completedNanos), .unsigned(conversion.gpa),
                    .unsigned(conversion.size), .text(conversion.direction.rawValue), .text(conversion.trigger.rawValue),
                    .text(conversion.decision.rawValue), .text(conversion.reason), .text(conversion.policyVersion),
                    .text(conversion.source.rawValue), .unsigned(conversion.changedBytes), .unsigned(conversion.discardedBytes),
                    .integer(conversion.guestResult),
                ])])
            }
        }
    }

    public func record(conversion: ConversionRecord) -> EventReceipt {
        receipt(insert(conversion).1)
    }

    public func begin(conversion: ConversionRecord) -> PendingConversion {
        let (ticket, sequence) = insert(conversion)
        return PendingConversion(ticket: ticket, receipt: receipt(sequence))
    }

    public func finish(_ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
                       discardedBytes: UInt64, guestResult: Int64) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(sql: Self.finishConversion, values: [
                .text(decision.rawValue), reason.map { .text($0) } ?? .null, .unsigned(completedNanos),
                .unsigned(discardedBytes), .integer(guestResult), .integer(Int64(ticket.id)),
            ])])
        }
    }
}
