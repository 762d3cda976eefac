import APITypes
import Foundation
import Synchronization

/// Read-only queries for the API, on their own WAL reader connections so API
/// traffic never waits behind (or delays) the writer's commits. Each call
/// borrows a connection from a small pool; a connection serves one thread at a time.
public final class EventQueries: Sendable {
    public let path: String
    private let idle = Mutex<[SQLiteConnection]>([])

    public init(path: String) {
        self.path = path
    }

    private func withConnection<T>(_ body: (SQLiteConnection) throws(SQLiteError) -> T) throws(EventStoreError) -> T {
        let borrowed = idle.withLock { $0.popLast() }
        let connection: SQLiteConnection
        if let borrowed {
            connection = borrowed
        } else {
            do throws(SQLiteError) {
                connection = try SQLiteConnection(path: path, readOnly: true)
            } catch {
                throw .sqlite(error)
            }
        }
        do throws(SQLiteError) {
            let result = try body(connection)
            idle.withLock { if $0.count < 8 { $0.append(connection) } }
            return result
        } catch {
            throw .sqlite(error)
        }
    }

    static let faultColumns = "event_id, vm_id, vcpu, time_ns, gpa, size, flags, source"
    static let conversionColumns = """
        event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision, reason, policy_version, \
        source, changed_bytes, discarded_bytes, guest_result
        """

    /// Memory faults matching `filter`, in event-id order, after `filter.after`.
    public func faults(_ filter: EventFilter) throws(EventStoreError) -> [FaultEvent] {
        var clauses = ["event_id > ?"]
        var values: [SQLValue] = [.integer(filter.after)]
        if let vm = filter.vm { clauses.append("vm_id = ?"); values.append(.integer(vm)) }
        if let since = filter.since { clauses.append("time_ns >= ?"); values.append(.unsigned(since)) }
        if let until = filter.until { clauses.append("time_ns < ?"); values.append(.unsigned(until)) }
        values.append(.integer(Int64(filter.limit)))
        let sql = "SELECT \(Self.faultColumns) FROM memory_faults WHERE \(clauses.joined(separator: " AND ")) ORDER BY event_id LIMIT ?"
        return try withConnection { connection throws(SQLiteError) in
            try connection.query(sql, values).map(Self.fault)
        }
    }

    /// Conversions matching `filter`, in event-id order, after `filter.after`.
    public func conversions(_ filter: EventFilter) throws(EventStoreError) -> [ConversionEvent] {
        var clauses = ["event_id > ?"]
        var values: [SQLValue] = [.integer(filter.after)]
        if let vm = filter.vm { clauses.append("vm_id = ?"); values.append(.integer(vm)) }
        if let direction = filter.direction { clauses.append("direction = ?"); values.append(.text(direction)) }
        if let trigger = filter.trigger { clauses.append("trigger = ?"); values.append(.text(trigger)) }
        if let decision = filter.decision { clauses.append("decision = ?"); values.append(.text(decision)) }
        if let since = filter.since { clauses.append("requested_ns >= ?"); values.append(.unsigned(since)) }
        if let until = filter.until { clauses.append("requested_ns < ?"); values.append(.unsigned(until)) }
        values.append(.integer(Int64(filter.limit)))
        let sql = "SELECT \(Self.conversionColumns) FROM conversions WHERE \(clauses.joined(separator: " AND ")) ORDER BY event_id LIMIT ?"
        return try withConnection { connection throws(SQLiteError) in
            try connection.query(sql, values).map(Self.conversion)
        }
    }

    /// Faults and conversions after `after`, in id order, up to `limit` — but never
    /// past a conversion that is still pending, so every event a consumer sees is
    /// final and a consumer that pulls with `after=` never misses a change.
    public func events(after: Int64, limit: Int) throws(EventStoreError) -> [EventEntry] {
        try withConnection { connection throws(SQLiteError) in
            try connection.execute("BEGIN")  // one snapshot for the three reads
            defer { try? connection.execute("COMMIT") }
            let firstPending = try connection.scalar(
                "SELECT min(event_id) FROM conversions WHERE decision = 'pending' AND event_id > ?", [.integer(after)])
            let ceiling = firstPending ?? Int64.max
            let bound: [SQLValue] = [.integer(after), .integer(ceiling), .integer(Int64(limit))]
            let faults = try connection.query("""
                SELECT \(Self.faultColumns) FROM memory_faults WHERE event_id > ? AND event_id < ? ORDER BY event_id LIMIT ?
                """, bound).map(Self.fault)
            let conversions = try connection.query("""
                SELECT \(Self.conversionColumns) FROM conversions WHERE event_id > ? AND event_id < ? ORDER BY event_id LIMIT ?
                """, bound).map(Self.conversion)
            var merged = faults.map(EventEntry.init(fault:)) + conversions.map(EventEntry.init(conversion:))
            merged.sort { $0.eventId < $1.eventId }
            return Array(merged.prefix(limit))
        }
    }

    /// Policy applications, newest first.
    public func policyHistory(limit: Int) throws(EventStoreError) -> [PolicyHistoryEntry] {
        try withConnection { connection throws(SQLiteError) in
            try connection.query("SELECT version, applied_ns, applied_by FROM policy_applications ORDER BY id DESC LIMIT ?",
                                 [.integer(Int64(limit))]).map { row in
                PolicyHistoryEntry(version: row[0].text, appliedNs: row[1].unsigned, appliedBy: row[2].text)
            }
        }
    }

    /// Conversion counts of the whole store by direction, trigger and decision (for metrics).
    public func conversionCounts() throws(EventStoreError) -> [(direction: String, trigger: String, decision: String, count: Int64)] {
        try withConnection { connection throws(SQLiteError) in
            try connection.query("SELECT direction, trigger, decision, count(*) FROM conversions GROUP BY 1, 2, 3").map {
                ($0[0].text, $0[1].text, $0[2].text, $0[3].integer)
            }
        }
    }

    static func fault(_ row: [SQLValue]) -> FaultEvent {
        FaultEvent(eventId: row[0].integer, vmId: row[1].integer, vcpu: Int(row[2].integer), timeNs: row[3].unsigned,
                   gpa: row[4].unsigned, size: row[5].unsigned, flags: row[6].unsigned, source: row[7].text)
    }

    static func conversion(_ row: [SQLValue]) -> ConversionEvent {
        ConversionEvent(eventId: row[0].integer, vmId: row[1].integer, vcpu: Int(row[2].integer), requestedNs: row[3].unsigned,
                        completedNs: row[4].optionalUnsigned, gpa: row[5].unsigned, size: row[6].unsigned,
                        direction: row[7].text, trigger: row[8].text, decision: row[9].text, reason: row[10].text,
                        policyVersion: row[11].text, source: row[12].text, changedBytes: row[13].unsigned,
                        discardedBytes: row[14].unsigned, guestResult: row[15].integer)
    }
}

extension SQLValue {
    var integer: Int64 { if case .integer(let value) = self { value } else { 0 } }
    var unsigned: UInt64 { UInt64(bitPattern: integer) }
    var optionalUnsigned: UInt64? { if case .integer(let value) = self { UInt64(bitPattern: value) } else { nil } }
    var text: String { if case .text(let value) = self { value } else { "" } }
}
