import Foundation
import Logging
import MemoryModel
import Platform
import SQLite
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

/// The SQLite event store: records every memory fault and conversion, durable
/// before the vCPU that caused it resumes (in the event ring at once, or, with
/// `Durability.full` or a full ring, by a group commit across vCPUs), and keeps
/// VMs and policy versions for audit.
public final class EventStore: EventSink {
    public let path: String
    private let writer: EventWriter
    /// Held for the store's life: event and VM ids are allocated in this process.
    private let ownership: WriterLock
    private struct IDs {
        var nextEvent: Int64
        var nextVM: Int64
    }
    private let ids: Mutex<IDs>
    /// VMs a previous agent left without an end, closed as `lost` when this store opened.
    public let recovered: RecoveryReport

    static let insertFault = """
        INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let insertConversion = """
        INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision,
                                 reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let finishConversion = """
        UPDATE conversions SET decision = ?, reason = coalesce(?, reason), completed_ns = ?, discarded_bytes = ?, guest_result = ?
        WHERE event_id = ?
        """

    /// Opens (creating and migrating) the database at `path`. VMs that a previous
    /// agent left without an end are closed as `lost`, their pending conversions
    /// marked `incomplete`.
    public init(path: String, durability: Durability = .normal, migrations: [Migration]? = nil,
                logger: Logger) throws(EventStoreError) {
        self.path = path
        ownership = try WriterLock(databasePath: path)
        do throws(StoreFileError) {
            // A ring that is a link or not the agent's own was put there by someone else: refuse, touch nothing.
            try StoreFiles.check(path + "-ring")
        } catch {
            throw .unsafeFile(error)
        }
        var ring: EventRing?
        if durability == .normal {
            do {
                ring = try EventRing(databasePath: path)
            } catch {
                // Recording still works without it: vCPUs then wait for each group commit.
                logger.warning("event ring unavailable; every event now waits for its SQLite commit", metadata: ["error": "\(error)"])
            }
        }
        let (initial, recovered, writer) = try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            try connection.execute("PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
            try connection.execute("PRAGMA foreign_keys = ON")
            try Migrator.migrate(connection, try migrations ?? Migrator.bundled())
            // What a dead agent left in the ring goes in before anything else looks at the tables.
            let replayed = try ring.map { ring throws(SQLiteError) in try Self.apply(ring, to: connection) } ?? 0
            let recovered = try Self.closeLostVMs(connection, atNanos: MonotonicClock.wallNanos(), replayed: replayed)
            let lastEvent = try connection.scalar("""
                SELECT max(coalesce((SELECT max(event_id) FROM memory_faults), 0), coalesce((SELECT max(event_id) FROM conversions), 0),
                           coalesce((SELECT last_id FROM id_watermarks WHERE name = 'event'), 0))
                """) ?? 0
            let lastVM = try connection.scalar("""
                SELECT max(coalesce((SELECT max(vm_id) FROM vms), 0), coalesce((SELECT last_id FROM id_watermarks WHERE name = 'vm'), 0))
                """) ?? 0
            return (IDs(nextEvent: lastEvent + 1, nextVM: lastVM + 1), recovered,
                    EventWriter(connection: connection, ring: ring, logger: logger))
        }
        if recovered.replayedRecords > 0 {
            logger.notice("applied events a previous agent left in the ring", metadata: ["records": "\(recovered.replayedRecords)"])
        }
        if recovered.vms > 0 {
            logger.warning("closed VMs a previous agent left running as lost", metadata: [
                "vms": "\(recovered.vms)", "incomplete_conversions": "\(recovered.incompleteConversions)"])
        }
        ids = Mutex(initial)
        self.recovered = recovered
        self.writer = writer
    }

    /// What opening the store found left behind by an agent that died.
    public struct RecoveryReport: Sendable, Equatable {
        public var vms: Int
        public var incompleteConversions: Int
        /// Event records taken from the ring (durable, not yet committed when the agent died).
        public var replayedRecords: Int

        public init(vms: Int, incompleteConversions: Int, replayedRecords: Int = 0) {
            self.vms = vms
            self.incompleteConversions = incompleteConversions
            self.replayedRecords = replayedRecords
        }
    }

    /// Moves what the ring holds into the database and empties the ring; returns the records applied.
    static func apply(_ ring: EventRing, to connection: SQLiteConnection) throws(SQLiteError) -> Int {
        let count = try replay(ring.unIngested(), into: connection)
        ring.reset()
        return count
    }

    /// Applies ring records in order, in one transaction. A row the database already
    /// has (committed before the ring knew) is skipped; a record that does not decode is dropped.
    static func replay(_ records: [[UInt8]], into connection: SQLiteConnection) throws(SQLiteError) -> Int {
        guard !records.isEmpty else { return 0 }
        return try connection.transaction { () throws(SQLiteError) -> Int in
            var applied = 0
            for record in records {
                guard let writes = EventRingCodec.decode(record) else { continue }
                for write in writes {
                    do throws(SQLiteError) {
                        try connection.statement(write.sql).run(write.values)
                    } catch where error.code & 0xFF == 19 {
                        // SQLITE_CONSTRAINT: already there.
                    }
                }
                applied += 1
            }
            return applied
        }
    }

    private static func closeLostVMs(_ connection: SQLiteConnection, atNanos now: UInt64,
                                     replayed: Int) throws(SQLiteError) -> RecoveryReport {
        try connection.transaction { () throws(SQLiteError) -> RecoveryReport in
            try connection.query("""
                UPDATE conversions SET decision = 'incomplete',
                       reason = reason || ' (the agent stopped before it completed; whether it took effect is unknown)'
                WHERE decision = 'pending' AND vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NULL)
                """)
            let conversions = connection.changes
            try connection.query("""
                UPDATE vms SET ended_ns = ?, final_state = 'lost',
                       final_reason = 'the agent that ran it ended without recording how the VM ended'
                WHERE ended_ns IS NULL
                """, [.unsigned(now)])
            let vms = connection.changes
            return RecoveryReport(vms: vms, incompleteConversions: conversions, replayedRecords: replayed)
        }
    }

    /// Commits what is queued, stops the writer and gives up the database.
    public func close() {
        writer.close()
        ownership.release()
    }

    /// Why recording stopped for good (a commit failed, or the file was removed), if it has.
    public var failure: RecordingFailure? { writer.failed }

    /// Runs `handler` once when recording fails for good (at once if it already has).
    public func onFailure(_ handler: @escaping @Sendable (RecordingFailure) -> Void) {
        writer.onFailure(handler)
    }

    /// Waits until everything recorded so far is committed to SQLite (readers call it first).
    public func flush() {
        writer.waitForEverythingQueued()
    }

    /// Transactions committed so far (each may hold many events).
    public var commitCount: UInt64 { writer.batches }

    /// How long commits took.
    public var commitLatency: LatencyHistogram { writer.commitLatency }

    private func receipt(_ sequence: UInt64) -> EventReceipt {
        EventReceipt { [writer] in writer.waitCommitted(sequence) }
    }

    // MARK: VMs and policies

    /// Hands out a VM id (never reused, even if the VM is never registered).
    public func reserveVMID() -> Int64 {
        ids.withLock { ids in
            defer { ids.nextVM += 1 }
            return ids.nextVM
        }
    }

    /// Records a new VM under a fresh id and returns it.
    @discardableResult
    public func register(_ registration: VMRegistration, createdNanos: UInt64) throws(EventStoreError) -> Int64 {
        let id = reserveVMID()
        try register(registration, id: id, createdNanos: createdNanos)
        return id
    }

    /// Records a new VM under an id from `reserveVMID`; waits until durable.
    public func register(_ registration: VMRegistration, id: Int64, createdNanos: UInt64) throws(EventStoreError) {
        let labels = (try? JSONSerialization.data(withJSONObject: registration.labels, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(sql: """
                INSERT INTO vms (vm_id, name, labels, memory_bytes, vcpus, backend, data_ram_start, data_ram_size,
                                 initial_state, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, values: [.integer(id), .text(registration.name), .text(labels), .unsigned(registration.memoryBytes),
                              .integer(Int64(registration.vcpus)), .text(registration.backend),
                              .unsigned(registration.dataRAM.start), .unsigned(registration.dataRAM.size),
                              .text(registration.initialState.rawValue), .unsigned(createdNanos)])])
        }
        if let failure = writer.waitCommitted(sequence) { throw .recording(failure) }
    }

    public func vmStarted(_ id: Int64, atNanos time: UInt64) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(sql: "UPDATE vms SET started_ns = coalesce(started_ns, ?) WHERE vm_id = ?",
                                    values: [.unsigned(time), .integer(id)])])
        }
    }

    /// Records how a VM ended and its final private/shared layout; waits until durable.
    /// Returns the store's failure, if it could not be recorded.
    @discardableResult
    public func vmEnded(_ id: Int64, atNanos time: UInt64, state: String, reason: String?, exitStatus: Int32?,
                        layout: PageStateMap) -> RecordingFailure? {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            var writes = [EventWriter.Write(sql: """
                UPDATE vms SET ended_ns = ?, final_state = ?, final_reason = ?, exit_status = ? WHERE vm_id = ? AND ended_ns IS NULL
                """, values: [.unsigned(time), .text(state), reason.map { .text($0) } ?? .null,
                              exitStatus.map { .integer(Int64($0)) } ?? .null, .integer(id)])]
            for run in layout.runs {
                writes.append(EventWriter.Write(sql: "INSERT OR REPLACE INTO memory_layout (vm_id, start_gpa, end_gpa, state) VALUES (?, ?, ?, ?)",
                                                values: [.integer(id), .unsigned(run.range.start), .unsigned(run.range.end),
                                                         .text(run.state.rawValue)]))
            }
            return ((), writes)
        }
        return writer.waitCommitted(sequence)
    }

    static let insertAPIRequest = """
        INSERT INTO api_requests (time_ns, method, path, status, duration_ns, client) VALUES (?, ?, ?, ?, ?, ?)
        """
    static let countRefusals = """
        INSERT INTO api_refusals (second, peer, kind, requests) VALUES (?, ?, ?, ?)
        ON CONFLICT (second, peer, kind) DO UPDATE SET requests = requests + excluded.requests
        """

    /// Longest path an audit row keeps (longer ones are cut and marked with "…").
    public static let maxAuditedPathBytes = 256

    /// Records one admitted API request that changed something, durably like an event
    /// (in the ring at once, or committed); returns the store's failure if it could not be.
    @discardableResult
    public func recordAPIRequest(method: String, path: String, status: Int, durationNanos: UInt64, client: String,
                                 atNanos time: UInt64) -> RecordingFailure? {
        let (_, sequence, durable) = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(.insertAPIRequest, values: [
                .unsigned(time), .text(method), .text(Self.truncated(path, to: Self.maxAuditedPathBytes)),
                .integer(Int64(status)), .unsigned(durationNanos), .text(Self.truncated(client, to: 128)),
            ])])
        }
        return durable ? nil : writer.waitCommitted(sequence)
    }

    /// Adds counts of refused requests (one row per second, peer and kind; asynchronously).
    public func recordRefusals(_ counts: [RefusalCount]) {
        guard !counts.isEmpty else { return }
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), counts.map { count in
                EventWriter.Write(sql: Self.countRefusals, values: [
                    .unsigned(count.second), .text(Self.truncated(count.peer, to: 64)), .text(count.kind.rawValue),
                    .unsigned(count.requests),
                ])
            })
        }
    }

    /// `text` cut to at most `limit` UTF-8 bytes on a character boundary, "…" marking a cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var kept = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            guard bytes + size <= limit - 3 else { break }
            kept.append(character)
            bytes += size
        }
        return kept + "…"
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
        if let failure = writer.waitCommitted(sequence) { throw .recording(failure) }
    }

    // MARK: EventSink

    private func receipt(_ sequence: UInt64, durable: Bool) -> EventReceipt {
        durable ? .done : receipt(sequence)
    }

    public func record(fault: MemoryFaultRecord) -> EventReceipt {
        let (_, sequence, durable) = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            ids.withLock { ids in
                let id = ids.nextEvent
                ids.nextEvent += 1
                return ((), [EventWriter.Write(.insertFault, values: [
                    .integer(id), .integer(fault.vmID), .integer(Int64(fault.vcpu)), .unsigned(fault.timeNanos),
                    .unsigned(fault.gpa), .unsigned(fault.size), .unsigned(fault.flags), .text(fault.source.rawValue),
                ])])
            }
        }
        return receipt(sequence, durable: durable)
    }

    private func insert(_ conversion: ConversionRecord) -> (ConversionTicket, sequence: UInt64, durable: Bool) {
        writer.enqueueDurably { () -> (ConversionTicket, [EventWriter.Write]) in
            ids.withLock { ids in
                let id = ids.nextEvent
                ids.nextEvent += 1
                return (ConversionTicket(id: UInt64(id)), [EventWriter.Write(.insertConversion, values: [
                    .integer(id), .integer(conversion.vmID), .integer(Int64(conversion.vcpu)),
                    .unsigned(conversion.requestedNanos), .optional(conversion.completedNanos), .unsigned(conversion.gpa),
                    .unsigned(conversion.size), .text(conversion.direction.rawValue), .text(conversion.trigger.rawValue),
                    .text(conversion.decision.rawValue), .text(conversion.reason), .text(conversion.policyVersion),
                    .text(conversion.source.rawValue), .unsigned(conversion.changedBytes), .unsigned(conversion.discardedBytes),
                    .integer(conversion.guestResult),
                    conversion.requestedPages.map { .integer(Int64(min($0, UInt64(Int64.max)))) } ?? .null,
                ])])
            }
        }
    }

    public func record(conversion: ConversionRecord) -> EventReceipt {
        let (_, sequence, durable) = insert(conversion)
        return receipt(sequence, durable: durable)
    }

    public func begin(conversion: ConversionRecord) -> PendingConversion {
        let (ticket, sequence, durable) = insert(conversion)
        return PendingConversion(ticket: ticket, receipt: receipt(sequence, durable: durable))
    }

    public func record(aggregate: EventAggregate) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(sql: """
                INSERT INTO event_aggregates (vm_id, second, kind, events) VALUES (?, ?, ?, ?)
                ON CONFLICT (vm_id, second, kind) DO UPDATE SET events = events + excluded.events
                """, values: [.integer(aggregate.vmID), .unsigned(aggregate.second), .text(aggregate.kind.rawValue),
                              .unsigned(aggregate.events)])])
        }
    }

    public func finish(_ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
                       discardedBytes: UInt64, guestResult: Int64) {
        _ = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(.finishConversion, values: [
                .text(decision.rawValue), reason.map { .text($0) } ?? .null, .unsigned(completedNanos),
                .unsigned(discardedBytes), .integer(guestResult), .integer(Int64(ticket.id)),
            ])])
        }
    }
}
