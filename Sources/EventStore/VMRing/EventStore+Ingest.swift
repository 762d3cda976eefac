import Foundation
import MemoryModel
import Platform
import SQLite

/// A VM as the store keeps it: what a restarted agent lists, and adopts when its process still runs.
public struct StoredVM: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var labels: [String: String]
    public var image: String
    public var commandLine: String
    public var memoryBytes: UInt64
    public var vcpus: Int
    public var backend: String
    public var initialState: PageState
    public var dataRAM: PageRange
    public var createdNanos: UInt64
    public var startedNanos: UInt64?
    public var endedNanos: UInt64?
    public var finalState: String?
    public var finalReason: String?
    public var exitStatus: Int32?
    public var timeoutMillis: Int64?
    public var pid: Int32?
    public var ringRead: UInt64
    /// The final (or last recorded) page-state runs.
    public var runs: [(start: UInt64, end: UInt64, state: PageState)]
    /// Conversions by decision, and faults, as recorded.
    public var conversions: [String: Int]
    public var faults: Int

    public static func == (a: StoredVM, b: StoredVM) -> Bool {
        a.id == b.id && a.endedNanos == b.endedNanos && a.ringRead == b.ringRead
    }
}

/// The drain of VM processes' rings: records become rows under event ids given here,
/// in commit order; the ring's read position is stored in the same transaction.
extension EventStore {
    /// Queues `records` of one VM's ring, read up to `position`. `pending` maps the VM
    /// process's conversion numbers to their event ids (kept by the caller across calls).
    /// Returns the sequence to wait for (`waitCommitted`).
    public func ingest(
        vmID: Int64, records: [VMRecord], through position: UInt64,
        pending: inout [UInt64: Int64]
    ) -> UInt64 {
        var open = pending
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            var writes: [EventWriter.Write] = []
            writes.reserveCapacity(records.count + 1)
            for record in records {
                switch record {
                case .fault(let fault):
                    writes.append(Self.faultWrite(fault, id: nextEventID()))
                case .conversion(let conversion):
                    writes.append(Self.conversionWrite(conversion, id: nextEventID()))
                case .begin(let sequence, let conversion):
                    let id = nextEventID()
                    // Already final when its finish came in the same drain (VMRecord.coalesced).
                    if conversion.decision == .pending { open[sequence] = id }
                    writes.append(Self.conversionWrite(conversion, id: id, vmSequence: sequence))
                case .finish(let sequence, let decision, let reason, let completed, let discarded, let result):
                    if let id = open.removeValue(forKey: sequence) {
                        writes.append(
                            Self.finishWrite(
                                eventID: id, decision: decision, reason: reason, completedNanos: completed,
                                discardedBytes: discarded, guestResult: result))
                    } else {
                        // Its pending row came before this agent knew the VM: find it by the VM's own number.
                        writes.append(
                            EventWriter.Write(
                                sql: """
                                    UPDATE conversions SET decision = ?, reason = coalesce(?, reason), completed_ns = ?, discarded_bytes = ?,
                                           guest_result = ? WHERE vm_id = ? AND vm_seq = ? AND decision = 'pending'
                                    """,
                                values: [
                                    .text(decision.rawValue), reason.map { .text($0) } ?? .null, .unsigned(completed),
                                    .unsigned(discarded), .integer(result), .integer(vmID), .unsigned(sequence),
                                ]))
                    }
                case .aggregate(let aggregate):
                    writes.append(Self.aggregateWrite(aggregate))
                case .lifecycle(let what, let time):
                    writes += vmLifecycleWrites(vmID, what, atNanos: time)
                case .ended(let ending):
                    writes += vmEndedWrites(
                        vmID, atNanos: MonotonicClock.wallNanos(), state: ending.state, reason: ending.reason,
                        exitStatus: ending.exitStatus, runs: ending.runs)
                }
            }
            writes.append(
                EventWriter.Write(
                    sql: "UPDATE vms SET ring_read = ? WHERE vm_id = ? AND ring_read < ?",
                    values: [.unsigned(position), .integer(vmID), .unsigned(position)]))
            return ((), writes)
        }
        pending = open
        return sequence
    }

    /// Blocks until write `sequence` is committed; the store's failure if it cannot be.
    public func waitCommitted(_ sequence: UInt64) -> RecordingFailure? { writer.waitCommitted(sequence) }

    /// Records how a VM whose process is gone ended, when its ring did not say (killed, or lost).
    @discardableResult
    public func vmEnded(_ id: Int64, atNanos time: UInt64, state: String, reason: String?, exitStatus: Int32?)
        -> RecordingFailure?
    {
        let (_, sequence) = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), vmEndedWrites(id, atNanos: time, state: state, reason: reason, exitStatus: exitStatus, runs: []))
        }
        return writer.waitCommitted(sequence)
    }

    /// Notes the process that runs a VM (adoption keeps it; nil once it is gone).
    public func vmProcess(_ id: Int64, pid: Int32?) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        sql: "UPDATE vms SET pid = ? WHERE vm_id = ?",
                        values: [pid.map { .integer(Int64($0)) } ?? .null, .integer(id)])
                ]
            )
        }
    }

    /// Marks the conversions a VM left pending as incomplete (its process died mid-conversion).
    public func closePendingConversions(of id: Int64) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    EventWriter.Write(
                        sql: """
                            UPDATE conversions SET decision = 'incomplete',
                                   reason = reason || ' (the VM process ended before it completed; whether it took effect is unknown)'
                            WHERE vm_id = ? AND decision = 'pending'
                            """, values: [.integer(id)])
                ]
            )
        }
    }

    /// Every VM not deleted, oldest first, with its counts: what an agent lists after a restart.
    public func storedVMs(only id: Int64? = nil) throws(EventStoreError) -> [StoredVM] {
        flush()
        return try EventStoreError.wrapping { () throws(SQLiteError) -> [StoredVM] in
            let connection = try SQLiteConnection(path: path, readOnly: true)
            var vms = try connection.rows(
                """
                SELECT vm_id, name, labels, image, command_line, memory_bytes, vcpus, backend, initial_state, data_ram_start,
                       data_ram_size, created_ns, started_ns, ended_ns, final_state, final_reason, exit_status, timeout_ms, pid, ring_read
                FROM vms WHERE deleted_ns IS NULL AND (?1 IS NULL OR vm_id = ?1) ORDER BY vm_id
                """, [id.map(SQLValue.integer) ?? .null]
            ) { row in
                let labels =
                    (try? JSONSerialization.jsonObject(with: Data(row.text(2).utf8))) as? [String: String] ?? [:]
                let start = row.unsigned(9)
                return StoredVM(
                    id: row.int64(0), name: row.text(1), labels: labels, image: row.text(3), commandLine: row.text(4),
                    memoryBytes: row.unsigned(5), vcpus: Int(row.int64(6)), backend: row.text(7),
                    initialState: PageState(rawValue: row.text(8)) ?? .private,
                    dataRAM: PageRange(start: start, end: start &+ row.unsigned(10)),
                    createdNanos: row.unsigned(11), startedNanos: row.isNull(12) ? nil : row.unsigned(12),
                    endedNanos: row.isNull(13) ? nil : row.unsigned(13),
                    finalState: row.isNull(14) ? nil : row.text(14),
                    finalReason: row.isNull(15) ? nil : row.text(15),
                    exitStatus: row.isNull(16) ? nil : Int32(truncatingIfNeeded: row.int64(16)),
                    timeoutMillis: row.isNull(17) ? nil : row.int64(17),
                    pid: row.isNull(18) ? nil : Int32(truncatingIfNeeded: row.int64(18)),
                    ringRead: row.unsigned(19), runs: [], conversions: [:], faults: 0)
            }
            // Counts and layouts are listed for ended VMs; a running VM's come from its process.
            for index in vms.indices where vms[index].endedNanos != nil {
                let id = vms[index].id
                vms[index].runs = try connection.rows(
                    "SELECT start_gpa, end_gpa, state FROM memory_layout WHERE vm_id = ? ORDER BY start_gpa",
                    [.integer(id)]
                ) { row in
                    (start: row.unsigned(0), end: row.unsigned(1), state: PageState(rawValue: row.text(2)) ?? .private)
                }
                for (decision, count) in try connection.rows(
                    "SELECT decision, count(*) FROM conversions WHERE vm_id = ? GROUP BY decision", [.integer(id)],
                    { ($0.text(0), Int($0.int64(1))) })
                {
                    vms[index].conversions[decision] = count
                }
                vms[index].faults = Int(
                    try connection.scalar("SELECT count(*) FROM memory_faults WHERE vm_id = ?", [.integer(id)]) ?? 0)
            }
            return vms
        }
    }

    /// The conversions VM processes left pending, by VM and the VM's own number: a drain resumed
    /// after a restart finishes them. One query (the decision index), however many VMs.
    public func pendingVMConversions() throws(EventStoreError) -> [Int64: [UInt64: Int64]] {
        try EventStoreError.wrapping { () throws(SQLiteError) -> [Int64: [UInt64: Int64]] in
            let connection = try SQLiteConnection(path: path, readOnly: true)
            var out: [Int64: [UInt64: Int64]] = [:]
            for (vm, sequence, id) in try connection.rows(
                "SELECT vm_id, vm_seq, event_id FROM conversions WHERE decision = 'pending' AND vm_seq IS NOT NULL", [],
                { ($0.int64(0), $0.unsigned(1), $0.int64(2)) })
            {
                out[vm, default: [:]][sequence] = id
            }
            return out
        }
    }
}
