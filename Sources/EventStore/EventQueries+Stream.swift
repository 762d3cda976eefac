import APITypes
import JSON
import SQLite

/// One event of `GET /v1/events/stream`, rendered once for every reader.
public struct StreamEvent: Sendable, Equatable {
    /// The durable event id (the SSE `id:`).
    public var id: Int64
    /// The SSE `event:` type: memory_fault, conversion, vm_created … vm_ended, policy_applied.
    public var kind: String
    /// The VM it concerns (nil for policy applications).
    public var vmID: Int64?
    /// The `EventEntry` JSON (what `/v1/events` lists for faults and conversions).
    public var json: [UInt8]

    public init(id: Int64, kind: String, vmID: Int64?, json: [UInt8]) {
        self.id = id
        self.kind = kind
        self.vmID = vmID
        self.json = json
    }
}

/// The event stream's reads: every kind of event in one id order, final only.
extension EventQueries {
    static let streamVMEventsSQL = """
        SELECT e.event_id, e.vm_id, e.time_ns, e.what, e.final_state, e.reason, e.exit_status, v.name, e.chain
        FROM vm_events e JOIN vms v USING (vm_id) WHERE e.event_id > ? AND e.event_id < ? ORDER BY e.event_id LIMIT ?
        """
    static let streamPoliciesSQL = """
        SELECT a.event_id, a.id, a.version, a.applied_ns, a.applied_by, a.principal, a.channel, a.idempotency_key, a.rollout_id,
               p.name, a.chain
        FROM policy_applications a JOIN policies p ON p.version = a.version
        WHERE a.event_id > ? AND a.event_id < ? ORDER BY a.event_id LIMIT ?
        """

    /// Events after `after` in id order, at most `limit`, never past a conversion still pending.
    /// Does not wait for the writer: the stream is woken by its commits.
    public func streamEvents(after: Int64, limit: Int) throws(EventStoreError) -> [StreamEvent] {
        try withConnection(flushing: false) { connection throws(SQLiteError) in
            // One read transaction: one snapshot for the five reads.
            try connection.transaction("BEGIN") { () throws(SQLiteError) -> [StreamEvent] in
                let bound = try Self.eventBounds(after: after, limit: limit, connection)
                var events = try connection.rows(Self.eventFaultsSQL, bound) { row in
                    var out = JSONWriter(capacity: 400)
                    out.beginObject()
                    out.chain(row, 9)
                    out.field("event_id", row.int64(0))
                    out.field("kind", "memory_fault")
                    out.key("memory_fault")
                    out.fault(row)
                    out.endObject()
                    return StreamEvent(id: row.int64(0), kind: "memory_fault", vmID: row.int64(1), json: out.bytes)
                }
                events += try connection.rows(Self.eventConversionsSQL, bound) { row in
                    var out = JSONWriter(capacity: 560)
                    out.beginObject()
                    out.chain(row, 17)
                    out.key("conversion")
                    out.conversion(row)
                    out.field("event_id", row.int64(0))
                    out.field("kind", "conversion")
                    out.endObject()
                    return StreamEvent(id: row.int64(0), kind: "conversion", vmID: row.int64(1), json: out.bytes)
                }
                events += try connection.rows(Self.streamVMEventsSQL, bound) { row in
                    let kind = "vm_" + row.text(3)
                    var out = JSONWriter(capacity: 320)
                    out.beginObject()
                    out.chain(row, 8)
                    out.field("event_id", row.int64(0))
                    out.field("kind", kind)
                    out.key("vm_event")
                    out.vmEvent(row, name: 7)
                    out.endObject()
                    return StreamEvent(id: row.int64(0), kind: kind, vmID: row.int64(1), json: out.bytes)
                }
                events += try connection.rows(Self.streamPoliciesSQL, bound) { row in
                    var out = JSONWriter(capacity: 400)
                    out.beginObject()
                    out.chain(row, 10)
                    out.field("event_id", row.int64(0))
                    out.field("kind", "policy_applied")
                    out.key("policy_application")
                    out.policyApplication(row, name: 9)
                    out.endObject()
                    return StreamEvent(id: row.int64(0), kind: "policy_applied", vmID: nil, json: out.bytes)
                }
                events.sort { $0.id < $1.id }
                return Array(events.prefix(limit))
            }
        }
    }

    /// Every kind of event after `after` as an `EventPage` document (`GET /v1/events?kinds=all`): what
    /// `audit pull` verifies the chain over.
    public func allEventsPageJSON(after: Int64, limit: Int) throws(EventStoreError) -> [UInt8] {
        store?.flush()
        let events = try streamEvents(after: after, limit: limit)
        var out: [UInt8] = []
        out.reserveCapacity(events.reduce(64) { $0 + $1.json.count + 1 })
        out += Array(#"{"events":["#.utf8)
        for (index, event) in events.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += event.json
        }
        var tail = JSONWriter(capacity: 32)
        tail.beginObject()
        tail.field("next_after", events.last?.id ?? after)
        tail.endObject()
        // `],` then the object's member without its opening brace.
        out += Array("],".utf8) + tail.bytes.dropFirst()
        out.append(0x0A)
        return out
    }

    /// The heads of both audit chains.
    public func auditHead() throws(EventStoreError) -> AuditHead {
        try withConnection { connection throws(SQLiteError) in
            AuditHead(
                events: try ChainVerifier.head(.events, connection),
                requests: try ChainVerifier.head(.requests, connection))
        }
    }

    /// The newest event id below which every event is final: where "from now on" starts.
    public func streamHead() throws(EventStoreError) -> Int64 {
        try withConnection { connection throws(SQLiteError) in
            try connection.transaction("BEGIN") { () throws(SQLiteError) -> Int64 in
                let newest =
                    try connection.scalar(
                        """
                        SELECT max(id) FROM (SELECT max(event_id) AS id FROM memory_faults UNION ALL SELECT max(event_id) FROM conversions
                                             UNION ALL SELECT max(event_id) FROM vm_events UNION ALL SELECT max(event_id) FROM policy_applications)
                        """) ?? 0
                return min(newest, (try Self.firstPending(after: 0, connection) ?? Int64.max) - 1)
            }
        }
    }

    /// The highest event id any `db prune` deleted (0 when none did).
    public func prunedThrough() throws(EventStoreError) -> Int64 {
        try withConnection(flushing: false) { connection throws(SQLiteError) in
            try connection.scalar("SELECT max(through_event_id) FROM prunes") ?? 0
        }
    }
}
