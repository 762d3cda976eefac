import Foundation
import Logging
import MemoryModel
import Platform
import SQLite
import Synchronization

/// What the store keeps about a VM when it is created.
public struct VMRegistration: Sendable {
    public var name: String
    public var labels: [String: String] = [:]
    public var memoryBytes: UInt64
    public var vcpus: Int
    public var backend: String
    public var dataRAM: PageRange
    public var initialState: PageState
    /// How the image is named to people, the command line, and the VM process (nil: inside the agent).
    public var image = ""
    public var commandLine = ""
    public var timeoutMillis: Int64?
    public var pid: Int32?

    public init(
        name: String, labels: [String: String] = [:], memoryBytes: UInt64, vcpus: Int, backend: String,
        dataRAM: PageRange, initialState: PageState
    ) {
        self.name = name
        self.labels = labels
        self.memoryBytes = memoryBytes
        self.vcpus = vcpus
        self.backend = backend
        self.dataRAM = dataRAM
        self.initialState = initialState
    }
}

/// VMs and policy versions: registered, started, ended, applied.
extension EventStore {
    /// What happens to a VM, as the event stream names it (`vm_<what>`).
    public enum VMEventKind: String, Sendable, CaseIterable {
        case created, started, paused, resumed, ended
    }

    static let insertVMEvent = """
        INSERT INTO vm_events (event_id, vm_id, time_ns, what, final_state, reason, exit_status) VALUES (?, ?, ?, ?, ?, ?, ?)
        """
    static let insertVMEventChained = """
        INSERT INTO vm_events (event_id, vm_id, time_ns, what, final_state, reason, exit_status, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// A lifecycle row under the next event id; call inside the writer's `enqueue`, which keeps ids in queue order.
    private func vmEventWrite(
        _ vmID: Int64, _ what: VMEventKind, atNanos time: UInt64, state: String? = nil,
        reason: String? = nil, exitStatus: Int32? = nil
    ) -> EventWriter.Write {
        let id = nextEventID()
        return EventWriter.Write(
            sql: Self.insertVMEvent,
            values: [
                .integer(id), .integer(vmID), .unsigned(time), .text(what.rawValue), state.map(SQLValue.text) ?? .null,
                reason.map(SQLValue.text) ?? .null, exitStatus.map { .integer(Int64($0)) } ?? .null,
            ])
    }

    func nextEventID() -> Int64 {
        ids.withLock { ids in
            defer { ids.nextEvent += 1 }
            return ids.nextEvent
        }
    }

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
        let labels =
            (try? JSONSerialization.data(withJSONObject: registration.labels, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        sql: """
                            INSERT INTO vms (vm_id, name, labels, memory_bytes, vcpus, backend, data_ram_start, data_ram_size,
                                             initial_state, created_ns, image, command_line, timeout_ms, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        values: [
                            .integer(id), .text(registration.name), .text(labels), .unsigned(registration.memoryBytes),
                            .integer(Int64(registration.vcpus)), .text(registration.backend),
                            .unsigned(registration.dataRAM.start), .unsigned(registration.dataRAM.size),
                            .text(registration.initialState.rawValue), .unsigned(createdNanos),
                            .text(registration.image),
                            .text(registration.commandLine), registration.timeoutMillis.map(SQLValue.integer) ?? .null,
                            registration.pid.map { .integer(Int64($0)) } ?? .null,
                        ]),
                    vmEventWrite(id, .created, atNanos: createdNanos),
                ]
            )
        }
        if let failure = writer.waitCommitted(sequence) { throw .recording(failure) }
    }

    public func vmStarted(_ id: Int64, atNanos time: UInt64) {
        vmLifecycle(id, .started, atNanos: time)
    }

    /// A start, pause or resume, for the event stream (the vms row keeps only the VM's start and end).
    public func vmLifecycle(_ id: Int64, _ what: VMEventKind, atNanos time: UInt64) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), vmLifecycleWrites(id, what, atNanos: time))
        }
    }

    /// The rows of a start, pause or resume under the next event id; call inside the writer's `enqueue`.
    func vmLifecycleWrites(_ id: Int64, _ what: VMEventKind, atNanos time: UInt64) -> [EventWriter.Write] {
        var writes: [EventWriter.Write] = []
        if what == .started {
            writes.append(
                EventWriter.Write(
                    sql: "UPDATE vms SET started_ns = coalesce(started_ns, ?) WHERE vm_id = ?",
                    values: [.unsigned(time), .integer(id)]))
        }
        writes.append(vmEventWrite(id, what, atNanos: time))
        return writes
    }

    /// Records how a VM ended and its final private/shared layout; waits until durable.
    /// Returns the store's failure, if it could not be recorded.
    @discardableResult
    public func vmEnded(
        _ id: Int64, atNanos time: UInt64, state: String, reason: String?, exitStatus: Int32?,
        layout: PageStateMap
    ) -> RecordingFailure? {
        let runs = layout.runs.map { (start: $0.range.start, end: $0.range.end, state: $0.state) }
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), vmEndedWrites(id, atNanos: time, state: state, reason: reason, exitStatus: exitStatus, runs: runs))
        }
        return writer.waitCommitted(sequence)
    }

    /// The rows of a VM's end under the next event id; call inside the writer's `enqueue`.
    func vmEndedWrites(
        _ id: Int64, atNanos time: UInt64, state: String, reason: String?, exitStatus: Int32?,
        runs: [(start: UInt64, end: UInt64, state: PageState)]
    ) -> [EventWriter.Write] {
        var writes = [
            EventWriter.Write(
                sql: """
                    UPDATE vms SET ended_ns = ?, final_state = ?, final_reason = ?, exit_status = ? WHERE vm_id = ? AND ended_ns IS NULL
                    """,
                values: [
                    .unsigned(time), .text(state), reason.map { .text($0) } ?? .null,
                    exitStatus.map { .integer(Int64($0)) } ?? .null, .integer(id),
                ]),
            vmEventWrite(id, .ended, atNanos: time, state: state, reason: reason, exitStatus: exitStatus),
        ]
        for run in runs {
            writes.append(
                EventWriter.Write(
                    sql: "INSERT OR REPLACE INTO memory_layout (vm_id, start_gpa, end_gpa, state) VALUES (?, ?, ?, ?)",
                    values: [.integer(id), .unsigned(run.start), .unsigned(run.end), .text(run.state.rawValue)]))
        }
        return writes
    }

    /// DELETE: the VM is no longer listed, here or after a restart (its rows stay).
    public func vmDeleted(_ id: Int64, atNanos time: UInt64) {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        sql: "UPDATE vms SET deleted_ns = ? WHERE vm_id = ?", values: [.unsigned(time), .integer(id)])
                ]
            )
        }
        _ = writer.waitCommitted(sequence)
    }

    public func recordPolicy(_ policy: VersionedPolicy, change: PolicyChange, atNanos time: UInt64)
        throws(EventStoreError)
    {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        sql:
                            "INSERT OR IGNORE INTO policies (version, document, first_applied_ns, name) VALUES (?, ?, ?, ?)",
                        values: [
                            .text(policy.version), .text(String(decoding: policy.document, as: UTF8.self)),
                            .unsigned(time),
                            policy.policy.name.map(SQLValue.text) ?? .null,
                        ]),
                    EventWriter.Write(
                        sql: """
                            INSERT INTO policy_applications (version, applied_ns, applied_by, event_id, principal, channel, rollout_id, idempotency_key)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        values: [
                            .text(policy.version), .unsigned(time), .text(change.appliedBy), .integer(nextEventID()),
                            change.principal.map(SQLValue.text) ?? .null, .text(change.channel),
                            change.rolloutID.map(SQLValue.text) ?? .null,
                            change.idempotencyKey.map(SQLValue.text) ?? .null,
                        ]),
                ]
            )
        }
        if let failure = writer.waitCommitted(sequence) { throw .recording(failure) }
    }
}
