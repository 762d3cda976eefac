import APITypes
import Foundation
import JSON
import SQLite
import Synchronization

/// Read-only queries for the API, on their own WAL reader connections so API
/// traffic never waits behind (or delays) the writer's commits. Each call
/// borrows a connection from a small pool; a connection serves one thread at a time.
public final class EventQueries: Sendable {
    public let path: String
    private let idle = Mutex<[SQLiteConnection]>([])
    /// The store recording into `path`, if in this process: every read first waits
    /// for the events already recorded (durable in its ring) to be committed, so a
    /// reader never misses an event that happened before its query.
    let store: EventStore?

    public init(path: String) {
        self.path = path
        store = nil
    }

    public init(store: EventStore) {
        path = store.path
        self.store = store
    }

    /// - Parameter flushing: false for a reader that is woken by commits (the event stream) and must not wait for the next.
    func withConnection<T>(flushing: Bool = true, _ body: (SQLiteConnection) throws(SQLiteError) -> T)
        throws(EventStoreError) -> T
    {
        if flushing { store?.flush() }
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

    static let faultColumns = "event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access"
    static let conversionColumns = """
        event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision, reason, policy_version, \
        source, changed_bytes, discarded_bytes, guest_result, requested_pages
        """

    /// A page of rows rendered as the API's JSON (`FaultPage` or `ConversionPage`).
    public struct JSONPage: Sendable {
        public var json: [UInt8]
        public var count: Int
    }

    /// `faults(filter)` as a `FaultPage` JSON document, rendered from the rows directly.
    public func faultPageJSON(_ filter: EventFilter) throws(EventStoreError) -> JSONPage {
        let (sql, values) = Self.faultQuery(filter)
        return try page(sql, values, limit: filter.newest ? nil : filter.limit) { $0.fault($1) }
    }

    /// `conversions(filter)` as a `ConversionPage` JSON document, rendered from the rows directly.
    public func conversionPageJSON(_ filter: EventFilter) throws(EventStoreError) -> JSONPage {
        let (sql, values) = Self.conversionQuery(filter)
        return try page(sql, values, limit: filter.newest ? nil : filter.limit) { $0.conversion($1) }
    }

    /// - Parameter limit: the page size, for its cursor; nil for a page that has none.
    private func page(
        _ sql: String, _ values: [SQLValue], limit: Int?,
        _ render: (inout JSONWriter, Statement) -> Void
    ) throws(EventStoreError) -> JSONPage {
        try withConnection { connection throws(SQLiteError) in
            let statement = try connection.statement(sql)
            defer { statement.reset() }
            try statement.bind(values)
            var out = JSONWriter(capacity: (limit ?? 100) * 420 + 64)
            out.beginObject()
            out.beginArray("items")
            var count = 0
            var last: Int64 = 0
            while try statement.step() {
                render(&out, statement)
                last = statement.int64(0)
                count += 1
            }
            out.endArray()
            if count == limit { out.field("next_cursor", String(last)) }
            out.endObject()
            return JSONPage(json: out.bytes + [0x0A], count: count)
        }
    }

    static func faultQuery(_ filter: EventFilter) -> (String, [SQLValue]) {
        var clauses = ["event_id > ?"]
        var values: [SQLValue] = [.integer(filter.after)]
        if let vm = filter.vm {
            clauses.append("vm_id = ?")
            values.append(.integer(vm))
        }
        if let access = filter.access {
            if access == "unknown" {
                clauses.append("access IS NULL")
            } else {
                clauses.append("access = ?")
                values.append(.text(access))
            }
        }
        if let since = filter.since {
            clauses.append("time_ns >= ?")
            values.append(.unsigned(since))
        }
        if let until = filter.until {
            clauses.append("time_ns < ?")
            values.append(.unsigned(until))
        }
        values.append(.integer(Int64(filter.limit)))
        return (
            ordered(
                "SELECT \(faultColumns) FROM memory_faults WHERE \(clauses.joined(separator: " AND "))",
                newest: filter.newest), values
        )
    }

    static func conversionQuery(_ filter: EventFilter) -> (String, [SQLValue]) {
        var clauses = ["event_id > ?"]
        var values: [SQLValue] = [.integer(filter.after)]
        if let vm = filter.vm {
            clauses.append("vm_id = ?")
            values.append(.integer(vm))
        }
        if let direction = filter.direction {
            clauses.append("direction = ?")
            values.append(.text(direction))
        }
        if let trigger = filter.trigger {
            clauses.append("trigger = ?")
            values.append(.text(trigger))
        }
        if let decision = filter.decision {
            clauses.append("decision = ?")
            values.append(.text(decision))
        }
        if let since = filter.since {
            clauses.append("requested_ns >= ?")
            values.append(.unsigned(since))
        }
        if let until = filter.until {
            clauses.append("requested_ns < ?")
            values.append(.unsigned(until))
        }
        values.append(.integer(Int64(filter.limit)))
        return (
            ordered(
                "SELECT \(conversionColumns) FROM conversions WHERE \(clauses.joined(separator: " AND "))",
                newest: filter.newest), values
        )
    }

    /// The first (or, for `newest`, the last) `?` rows of a selection, listed in event-id order.
    static func ordered(_ selection: String, newest: Bool) -> String {
        newest
            ? "SELECT * FROM (\(selection) ORDER BY event_id DESC LIMIT ?) ORDER BY event_id"
            : "\(selection) ORDER BY event_id LIMIT ?"
    }

    /// Memory faults matching `filter`, in event-id order, after `filter.after`.
    public func faults(_ filter: EventFilter) throws(EventStoreError) -> [FaultEvent] {
        let (sql, values) = Self.faultQuery(filter)
        return try withConnection { connection throws(SQLiteError) in try connection.rows(sql, values, Self.fault) }
    }

    /// Conversions matching `filter`, in event-id order, after `filter.after`.
    public func conversions(_ filter: EventFilter) throws(EventStoreError) -> [ConversionEvent] {
        let (sql, values) = Self.conversionQuery(filter)
        return try withConnection { connection throws(SQLiteError) in try connection.rows(sql, values, Self.conversion)
        }
    }

    /// Faults and conversions after `after`, in id order, up to `limit` — but never
    /// past a conversion that is still pending, so every event a consumer sees is
    /// final and a consumer that pulls with `after=` never misses a change.
    public func events(after: Int64, limit: Int) throws(EventStoreError) -> [EventEntry] {
        try withConnection { connection throws(SQLiteError) in
            // One read transaction: one snapshot for the three reads.
            try connection.transaction("BEGIN") { () throws(SQLiteError) -> [EventEntry] in
                let bound = try Self.eventBounds(after: after, limit: limit, connection)
                let faults = try connection.rows(Self.eventFaultsSQL, bound, Self.fault)
                let conversions = try connection.rows(Self.eventConversionsSQL, bound, Self.conversion)
                var merged = faults.map(EventEntry.init(fault:)) + conversions.map(EventEntry.init(conversion:))
                merged.sort { $0.eventId < $1.eventId }
                return Array(merged.prefix(limit))
            }
        }
    }

    // The chain value is the column after the API's (9 for faults, 17 for conversions).
    static let eventFaultsSQL =
        "SELECT \(faultColumns), chain FROM memory_faults WHERE event_id > ? AND event_id < ? ORDER BY event_id LIMIT ?"
    static let eventConversionsSQL =
        "SELECT \(conversionColumns), chain FROM conversions WHERE event_id > ? AND event_id < ? ORDER BY event_id LIMIT ?"

    /// The values of both event queries: after `after`, before the first conversion still pending, at most `limit`.
    static func eventBounds(after: Int64, limit: Int, _ connection: SQLiteConnection) throws(SQLiteError) -> [SQLValue]
    {
        [.integer(after), .integer(try firstPending(after: after, connection) ?? Int64.max), .integer(Int64(limit))]
    }

    /// The first conversion after `after` still pending: where the final events end.
    static func firstPending(after: Int64, _ connection: SQLiteConnection) throws(SQLiteError) -> Int64? {
        try connection.scalar(
            "SELECT min(event_id) FROM conversions WHERE decision = 'pending' AND event_id > ?", [.integer(after)])
    }

    /// `events(after:limit:)` as an `EventPage` JSON document, rendered from the rows directly:
    /// faults and conversions merged by id in one pass over both tables.
    public func eventPageJSON(after: Int64, limit: Int) throws(EventStoreError) -> [UInt8] {
        try withConnection { connection throws(SQLiteError) in
            // One read transaction: one snapshot for the three reads.
            try connection.transaction("BEGIN") { () throws(SQLiteError) -> [UInt8] in
                let bound = try Self.eventBounds(after: after, limit: limit, connection)
                let faults = try connection.statement(Self.eventFaultsSQL)
                defer { faults.reset() }
                let conversions = try connection.statement(Self.eventConversionsSQL)
                defer { conversions.reset() }
                try faults.bind(bound)
                try conversions.bind(bound)
                var out = JSONWriter(capacity: limit * 480 + 64)
                out.beginObject()
                out.beginArray("events")
                var fault = try faults.step(), conversion = try conversions.step()
                var count = 0
                var last = after
                // Keys in the order JSONEncoder sorts `EventEntry`'s: conversion, event_id, kind, memory_fault.
                while count < limit && (fault || conversion) {
                    out.beginObject()
                    if fault && (!conversion || faults.int64(0) < conversions.int64(0)) {
                        last = faults.int64(0)
                        out.chain(faults, 9)
                        out.field("event_id", last)
                        out.field("kind", "memory_fault")
                        out.key("memory_fault")
                        out.fault(faults)
                        fault = try faults.step()
                    } else {
                        last = conversions.int64(0)
                        out.chain(conversions, 17)
                        out.key("conversion")
                        out.conversion(conversions)
                        out.field("event_id", last)
                        out.field("kind", "conversion")
                        conversion = try conversions.step()
                    }
                    out.endObject()
                    count += 1
                }
                out.endArray()
                out.field("next_after", last)
                out.endObject()
                return out.bytes + [0x0A]
            }
        }
    }

    /// The newest conversions (of one decision, if given), newest first.
    public func latestConversions(limit: Int, decision: String? = nil) throws(EventStoreError) -> [ConversionEvent] {
        try withConnection { connection throws(SQLiteError) in
            if let decision {
                return try connection.rows(
                    "SELECT \(Self.conversionColumns) FROM conversions WHERE decision = ? ORDER BY event_id DESC LIMIT ?",
                    [.text(decision), .integer(Int64(limit))], Self.conversion)
            }
            return try connection.rows(
                "SELECT \(Self.conversionColumns) FROM conversions ORDER BY event_id DESC LIMIT ?",
                [.integer(Int64(limit))], Self.conversion)
        }
    }

    /// Policy applications, newest first.
    public func policyHistory(limit: Int) throws(EventStoreError) -> [PolicyHistoryEntry] {
        try withConnection { connection throws(SQLiteError) in
            try connection.query(
                """
                SELECT a.version, a.applied_ns, a.applied_by, p.name, a.id, a.principal, a.channel, a.rollout_id, a.idempotency_key
                FROM policy_applications a JOIN policies p ON p.version = a.version ORDER BY a.id DESC LIMIT ?
                """, [.integer(Int64(limit))]
            ).map { row in
                func optional(_ value: SQLValue) -> String? { value == .null ? nil : value.text }
                return PolicyHistoryEntry(
                    id: row[4].integer, version: row[0].text, appliedNs: row[1].unsigned, appliedBy: row[2].text,
                    name: optional(row[3]), principal: optional(row[5]), channel: optional(row[6]),
                    rolloutId: optional(row[7]), idempotencyKey: optional(row[8]))
            }
        }
    }

    /// A policy document by its version, as it was applied (nil if this store never had it).
    public func policyDocument(version: String) throws(EventStoreError) -> [UInt8]? {
        try withConnection { connection throws(SQLiteError) in
            try connection.query("SELECT document FROM policies WHERE version = ?", [.text(version)]).first.map {
                Array($0[0].text.utf8)
            }
        }
    }

    /// Admitted requests that changed something, after `after`, in id order.
    public func apiRequests(after: Int64, limit: Int) throws(EventStoreError) -> APIRequestPage {
        try withConnection { connection throws(SQLiteError) in
            let items = try connection.query(
                """
                SELECT id, time_ns, method, path, status, duration_ns, client, chain FROM api_requests WHERE id > ? ORDER BY id LIMIT ?
                """, [.integer(after), .integer(Int64(limit))]
            ).map { row in
                APIRequestRecord(
                    id: row[0].integer, timeNs: row[1].unsigned, method: row[2].text, path: row[3].text,
                    status: Int(row[4].integer), durationNs: row[5].unsigned,
                    client: row[6] == .null ? nil : row[6].text,
                    chain: row[7] == .null ? nil : row[7].text)
            }
            return APIRequestPage(items: items, nextAfter: items.last?.id ?? after)
        }
    }

    /// The policy of the newest application: what the agent restores on start (nil on a new store).
    public func policyInForce() throws(EventStoreError) -> StoredPolicy? {
        try withConnection { connection throws(SQLiteError) in
            try connection.query(
                """
                SELECT a.version, p.document, a.applied_ns, a.applied_by FROM policy_applications a
                JOIN policies p ON p.version = a.version ORDER BY a.id DESC LIMIT 1
                """
            ).first.map { row in
                StoredPolicy(
                    version: row[0].text, document: Array(row[1].text.utf8), appliedNs: row[2].unsigned,
                    appliedBy: row[3].text)
            }
        }
    }

    static func fault(_ row: Statement) -> FaultEvent {
        FaultEvent(
            eventId: row.int64(0), vmId: row.int64(1), vcpu: Int(row.int64(2)), timeNs: row.unsigned(3),
            gpa: row.unsigned(4), size: row.unsigned(5), flags: row.unsigned(6), source: row.text(7),
            access: row.isNull(8) ? "unknown" : row.text(8))
    }

    static func conversion(_ row: Statement) -> ConversionEvent {
        ConversionEvent(
            eventId: row.int64(0), vmId: row.int64(1), vcpu: Int(row.int64(2)), requestedNs: row.unsigned(3),
            completedNs: row.isNull(4) ? nil : row.unsigned(4), gpa: row.unsigned(5), size: row.unsigned(6),
            direction: row.text(7), trigger: row.text(8), decision: row.text(9), reason: row.text(10),
            policyVersion: row.text(11), source: row.text(12), changedBytes: row.unsigned(13),
            discardedBytes: row.unsigned(14), guestResult: row.int64(15),
            requestedPages: row.isNull(16) ? nil : row.unsigned(16))
    }
}

extension SQLValue {
    var integer: Int64 { if case .integer(let value) = self { value } else { 0 } }
    var unsigned: UInt64 { UInt64(bitPattern: integer) }
    var text: String { if case .text(let value) = self { value } else { "" } }
}

/// The policy a store says is in force: the newest application and its document.
public struct StoredPolicy: Sendable, Equatable {
    public var version: String
    public var document: [UInt8]
    public var appliedNs: UInt64
    public var appliedBy: String
}
