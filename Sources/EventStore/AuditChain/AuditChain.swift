import JSON
import MemoryModel
import SQLite

/// The audit chain (docs/AUDIT-CHAIN.md). Every final event, in event id order, carries
/// `chain = SHA-256(previous chain ‖ canonical bytes)` as hex; admitted API writes carry
/// their own chain in request id order. A chain starts at 32 zero bytes, or at the
/// value a `db prune` cut left (its genesis). Pure, apart from the row readers.
public enum AuditChain {
    /// The two chains a store keeps.
    public enum Name: String, Sendable, CaseIterable {
        case events, requests

        /// The tables whose rows make up this chain.
        var tables: [Table] {
            self == .requests ? [.apiRequests] : [.memoryFaults, .conversions, .vmEvents, .policyApplications]
        }
    }

    /// The value before the first row of a chain nobody pruned.
    public static var zero: [UInt8] { ChainLink.zero }

    public static func link(_ previous: [UInt8], _ canonical: [UInt8]) -> [UInt8] {
        ChainLink.link(previous, canonical)
    }

    /// The tables whose rows are chained, with the column that holds each row's id.
    enum Table: String, CaseIterable {
        case memoryFaults = "memory_faults", conversions, vmEvents = "vm_events", policyApplications =
            "policy_applications"
        case apiRequests = "api_requests"

        var idColumn: String { self == .apiRequests ? "id" : "event_id" }
        var updateSQL: String { "UPDATE \(rawValue) SET chain = ? WHERE \(idColumn) = ?" }
    }

    /// One row of a chain: its id, its canonical bytes, and the chain value stored with it (nil: none).
    struct Row {
        var id: Int64
        var table: Table
        var canonical: [UInt8]
        var stored: String?
        var timeNanos: UInt64
        /// An applied conversion's change to its VM's memory (what checkpoints follow).
        var applied: AppliedChange? = nil
    }

    /// What an applied conversion did: pages [start, end) of VM `vmID` became `state`.
    struct AppliedChange: Equatable {
        var vmID: Int64
        var start: UInt64
        var end: UInt64
        var state: PageState
    }

    // The readers: the same columns the API renders, plus the stored chain value last.
    static let faultsSQL = """
        SELECT event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access, chain
        FROM memory_faults WHERE event_id > ?1 AND event_id < ?2 ORDER BY event_id LIMIT ?3
        """
    static let conversionsSQL = """
        SELECT \(EventQueries.conversionColumns), chain FROM conversions WHERE event_id > ?1 AND event_id < ?2 ORDER BY event_id LIMIT ?3
        """
    static let vmEventsSQL = """
        SELECT event_id, vm_id, time_ns, what, final_state, reason, exit_status, chain
        FROM vm_events WHERE event_id > ?1 AND event_id < ?2 ORDER BY event_id LIMIT ?3
        """
    static let policiesSQL = """
        SELECT event_id, id, version, applied_ns, applied_by, principal, channel, idempotency_key, rollout_id, chain
        FROM policy_applications WHERE event_id > ?1 AND event_id < ?2 ORDER BY event_id LIMIT ?3
        """
    static let requestsSQL = """
        SELECT id, time_ns, method, path, status, duration_ns, client, chain FROM api_requests WHERE id > ?1 ORDER BY id LIMIT ?2
        """

    /// Final events after `after`, before the first conversion still pending, at most `limit`, in id order.
    static func eventRows(after: Int64, limit: Int, _ connection: SQLiteConnection) throws(SQLiteError) -> [Row] {
        let bound = try EventQueries.eventBounds(after: after, limit: limit, connection)
        var rows = try connection.rows(faultsSQL, bound) { row in
            Row(
                id: row.int64(0), table: .memoryFaults, canonical: canonicalFault(row), stored: storedChain(row, 9),
                timeNanos: row.unsigned(3))
        }
        rows += try connection.rows(conversionsSQL, bound) { row in
            Row(
                id: row.int64(0), table: .conversions, canonical: canonicalConversion(row),
                stored: storedChain(row, 17),
                timeNanos: row.unsigned(3), applied: appliedChange(row))
        }
        rows += try connection.rows(vmEventsSQL, bound) { row in
            Row(
                id: row.int64(0), table: .vmEvents, canonical: canonicalVMEvent(row), stored: storedChain(row, 7),
                timeNanos: row.unsigned(2))
        }
        rows += try connection.rows(policiesSQL, bound) { row in
            Row(
                id: row.int64(0), table: .policyApplications, canonical: canonicalPolicyApplication(row),
                stored: storedChain(row, 9),
                timeNanos: row.unsigned(3))
        }
        rows.sort { $0.id < $1.id }
        return Array(rows.prefix(limit))
    }

    /// Admitted API writes after `after`, at most `limit`, in id order.
    static func requestRows(after: Int64, limit: Int, _ connection: SQLiteConnection) throws(SQLiteError) -> [Row] {
        try connection.rows(requestsSQL, [.integer(after), .integer(Int64(limit))]) { row in
            Row(
                id: row.int64(0), table: .apiRequests, canonical: canonicalRequest(row), stored: storedChain(row, 7),
                timeNanos: row.unsigned(1))
        }
    }

    static func rows(_ name: Name, after: Int64, limit: Int, _ connection: SQLiteConnection) throws(SQLiteError)
        -> [Row]
    {
        switch name {
        case .events: try eventRows(after: after, limit: limit, connection)
        case .requests: try requestRows(after: after, limit: limit, connection)
        }
    }

    /// An applied conversion row's change (columns in `EventQueries.conversionColumns` order); nil for any other decision.
    static func appliedChange<R: SQLRow>(_ row: R) -> AppliedChange? {
        guard row.text(9) == "applied" else { return nil }
        let start = row.unsigned(5)
        let (end, overflow) = start.addingReportingOverflow(row.unsigned(6))
        guard !overflow else { return nil }
        return AppliedChange(
            vmID: row.int64(1), start: start, end: end, state: row.text(7) == "to_shared" ? .shared : .private)
    }

    private static func storedChain(_ row: Statement, _ column: Int32) -> String? {
        row.isNull(column) ? nil : row.text(column)
    }

    // The canonical bytes: the entry as `GET /v1/events?kinds=all` renders it, without `chain`
    // and without the names joined from other tables (`vm_name`, a policy's `name`), in
    // canonical JSON (keys sorted by their bytes, no white space). `ChainCanonicalTests` pins
    // each against the API's own rendering.

    static func canonicalFault<R: SQLRow>(_ row: R) -> [UInt8] {
        var out = JSONWriter(capacity: 320)
        out.beginObject()
        out.field("event_id", row.int64(0))
        out.field("kind", "memory_fault")
        out.key("memory_fault")
        out.fault(row)
        out.endObject()
        return out.bytes
    }

    static func canonicalConversion<R: SQLRow>(_ row: R) -> [UInt8] {
        var out = JSONWriter(capacity: 480)
        out.beginObject()
        out.key("conversion")
        out.conversion(row)
        out.field("event_id", row.int64(0))
        out.field("kind", "conversion")
        out.endObject()
        return out.bytes
    }

    static func canonicalVMEvent<R: SQLRow>(_ row: R) -> [UInt8] {
        var out = JSONWriter(capacity: 256)
        out.beginObject()
        out.field("event_id", row.int64(0))
        out.field("kind", "vm_" + row.text(3))
        out.key("vm_event")
        out.vmEvent(row, name: nil)
        out.endObject()
        return out.bytes
    }

    static func canonicalPolicyApplication<R: SQLRow>(_ row: R) -> [UInt8] {
        var out = JSONWriter(capacity: 320)
        out.beginObject()
        out.field("event_id", row.int64(0))
        out.field("kind", "policy_applied")
        out.key("policy_application")
        out.policyApplication(row, name: nil)
        out.endObject()
        return out.bytes
    }

    static func canonicalRequest<R: SQLRow>(_ row: R) -> [UInt8] {
        var out = JSONWriter(capacity: 256)
        out.apiRequest(row)
        return out.bytes
    }
}

/// The JSON of the event kinds only the stream (and `kinds=all`) carries, and of admitted requests.
extension JSONWriter {
    /// A vm_events row (event_id, vm_id, time_ns, what, final_state, reason, exit_status); `name` joined in when given.
    mutating func vmEvent<R: SQLRow>(_ row: R, name: Int32?) {
        beginObject()
        field("event_id", row.int64(0))
        if !row.isNull(6) { field("exit_status", row.int64(6)) }
        if !row.isNull(4) { field("final_state", text: 4, of: row) }
        if !row.isNull(5) { field("reason", text: 5, of: row) }
        field("time_ns", row.unsigned(2))
        field("vm_id", row.int64(1))
        if let name { field("vm_name", text: name, of: row) }
        field("what", text: 3, of: row)
        endObject()
    }

    /// A policy_applications row (event_id, id, version, applied_ns, applied_by, principal, channel,
    /// idempotency_key, rollout_id); the document's `name` joined in when given.
    mutating func policyApplication<R: SQLRow>(_ row: R, name: Int32?) {
        beginObject()
        field("applied_by", text: 4, of: row)
        field("applied_ns", row.unsigned(3))
        if !row.isNull(6) { field("channel", text: 6, of: row) }
        field("event_id", row.int64(0))
        field("id", row.int64(1))
        if !row.isNull(7) { field("idempotency_key", text: 7, of: row) }
        if let name, !row.isNull(name) { field("name", text: name, of: row) }
        if !row.isNull(5) { field("principal", text: 5, of: row) }
        if !row.isNull(8) { field("rollout_id", text: 8, of: row) }
        field("version", text: 2, of: row)
        endObject()
    }

    /// The `chain` member (hex), when the row has one; first, as keys sort.
    mutating func chain<R: SQLRow>(_ row: R, _ column: Int32) {
        if !row.isNull(column) { field("chain", text: column, of: row) }
    }

    /// An api_requests row (id, time_ns, method, path, status, duration_ns, client).
    mutating func apiRequest<R: SQLRow>(_ row: R) {
        beginObject()
        if !row.isNull(6) { field("client", text: 6, of: row) }
        field("duration_ns", row.unsigned(5))
        field("id", row.int64(0))
        field("method", text: 2, of: row)
        field("path", text: 3, of: row)
        field("status", row.int64(4))
        field("time_ns", row.unsigned(1))
        endObject()
    }
}
