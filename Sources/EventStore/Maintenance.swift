import Foundation
import Platform
import SQLite

/// Offline operations on an event store file: `memgate-agent db …`.
public enum Maintenance {
    public struct CheckReport: Sendable {
        public var integrity: String
        public var schemaVersion: Int
        public var binaryVersion: Int
        public var vms: Int64
        public var faults: Int64
        public var conversions: Int64
        /// Conversions still waiting for their outcome (only while an agent records).
        public var pendingConversions: Int64
        /// Conversions an agent that died left without an outcome.
        public var incompleteConversions: Int64
    }

    public struct PruneReport: Sendable {
        public var faults: Int
        public var conversions: Int
        /// VM lifecycle events.
        public var lifecycle = 0
        public var vms: Int
        /// Rows of `api_requests` and `api_refusals` older than the cutoff.
        public var apiRequests: Int
        public var refusalCounts: Int
    }

    /// Creates or upgrades the schema and, unless an agent is recording into the
    /// database, applies the events a killed agent left in its ring. Returns the
    /// versions before and after, and the ring records applied.
    public static func migrate(path: String, migrations: [Migration]? = nil) throws(EventStoreError) -> (
        from: Int, to: Int, fromRing: Int
    ) {
        try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            let (from, to) = try Migrator.migrate(connection, try migrations ?? Migrator.bundled())
            // A running agent owns its ring; only a free database's ring is ours to apply.
            guard let lock = try? WriterLock(databasePath: path), FileManager.default.fileExists(atPath: path + "-ring")
            else {
                return (from, to, 0)
            }
            defer { withExtendedLifetime(lock) {} }
            let applied = try EventStore.apply(try EventRing(databasePath: path), to: connection)
            _ = try ChainLinker.catchUp(connection)
            return (from, to, applied)
        }
    }

    /// `PRAGMA integrity_check`, schema versions and row counts; never writes.
    public static func check(path: String, migrations: [Migration]? = nil) throws(EventStoreError) -> CheckReport {
        try EventStoreError.wrapping {
            guard FileManager.default.fileExists(atPath: path) else {
                throw EventStoreError.migrations("\(path) does not exist; run `memgate-agent db migrate --db \(path)`")
            }
            let connection = try SQLiteConnection(path: path, readOnly: true)
            let integrity = try connection.query("PRAGMA integrity_check").compactMap { row -> String? in
                if case .text(let text)? = row.first { text } else { nil }
            }.joined(separator: "; ")
            let version = Int(try connection.scalar("PRAGMA user_version") ?? 0)
            let binary = try (migrations ?? Migrator.bundled()).last?.version ?? 0
            func count(_ sql: String) throws -> Int64 { version == 0 ? 0 : try connection.scalar(sql) ?? 0 }
            return CheckReport(
                integrity: integrity, schemaVersion: version, binaryVersion: binary,
                vms: try count("SELECT count(*) FROM vms"),
                faults: try count("SELECT count(*) FROM memory_faults"),
                conversions: try count("SELECT count(*) FROM conversions"),
                pendingConversions: try count("SELECT count(*) FROM conversions WHERE decision = 'pending'"),
                incompleteConversions: try count("SELECT count(*) FROM conversions WHERE decision = 'incomplete'"))
        }
    }

    /// Recomputes both audit chains from their genesis (read-only; an agent may be recording).
    public static func verify(path: String) throws(EventStoreError) -> [ChainVerifier.Report] {
        try EventStoreError.wrapping {
            guard FileManager.default.fileExists(atPath: path) else {
                throw EventStoreError.migrations("\(path) does not exist; run `memgate-agent db migrate --db \(path)`")
            }
            let connection = try SQLiteConnection(path: path, readOnly: true)
            let version = Int(try connection.scalar("PRAGMA user_version") ?? 0)
            guard version >= 9 else {
                throw EventStoreError.migrations(
                    "\(path) is at schema \(version), before the audit chain (9); run `memgate-agent db migrate --db \(path)`"
                )
            }
            return try AuditChain.Name.allCases.map { name throws(SQLiteError) in
                try ChainVerifier.verify(name, connection)
            }
        }
    }

    /// Rows each prune transaction deletes: small enough that an agent's commit never
    /// waits for one longer than a few milliseconds.
    public static let pruneBatch = 1000

    /// Deletes the oldest events and API audit rows: each chain is cut at its newest row
    /// such that every row up to it is older than `cutoffNanos` (and, for events, belongs
    /// to a VM that has ended), so the rows that stay still verify from the cut. The cut's
    /// chain value becomes the chain's genesis, with the count and time span removed;
    /// policy applications are kept (they are the policy history), outside the verified
    /// range. Then VMs that ended before the cutoff with nothing left go. Works in small
    /// transactions of `batch` rows, so an agent recording into the same database is never
    /// held up for long; what a deleted applied conversion changed is added to its VM's
    /// pruned totals in the same transaction, so `vm_memory_state` stays exact. Frees the
    /// space with an incremental vacuum.
    public static func prune(path: String, olderThan cutoffNanos: UInt64, batch: Int = pruneBatch)
        throws(EventStoreError) -> PruneReport
    {
        try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            try Migrator.migrate(connection, try Migrator.bundled())
            try connection.execute("PRAGMA foreign_keys = ON")
            let cutoff = SQLValue.unsigned(cutoffNanos)
            let limit = SQLValue.integer(Int64(max(batch, 1)))
            try keepWatermarks(connection)
            // A cut needs the chain value where it falls: rows no agent chained yet (an older store) are chained first.
            _ = try ChainLinker.catchUp(connection)
            var report = PruneReport(faults: 0, conversions: 0, vms: 0, apiRequests: 0, refusalCounts: 0)
            try pruneEvents(connection, cutoff: cutoff, limit: limit, into: &report)
            report.vms = try pruneEndedVMs(connection, cutoff: cutoff)
            try pruneRequests(connection, cutoff: cutoff, limit: limit, into: &report)
            try vacuum(connection)
            return report
        }
    }

    /// Remembers the highest ids first: deleting the newest rows must not let them be handed out again.
    static func keepWatermarks(_ connection: SQLiteConnection) throws(SQLiteError) {
        try connection.transaction { () throws(SQLiteError) in
            try connection.execute(
                """
                INSERT INTO id_watermarks (name, last_id)
                VALUES ('event', max(\(EventStore.highestEventIDs))),
                       ('vm', coalesce((SELECT max(vm_id) FROM vms), 0))
                ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)
                """)
        }
    }

    /// The events up to the chain's cut, table by table, a batch a transaction.
    static func pruneEvents(
        _ connection: SQLiteConnection, cutoff: SQLValue, limit: SQLValue, into report: inout PruneReport
    ) throws(SQLiteError) {
        guard let through = try cutEvents(connection, cutoff: cutoff) else { return }
        report.faults = try deleteInBatches(
            connection,
            """
            DELETE FROM memory_faults WHERE event_id IN (SELECT event_id FROM memory_faults WHERE event_id <= ?1 LIMIT ?2)
            """, [.integer(through), limit])
        report.conversions = try deleteConversions(connection, through: through, limit: limit)
        report.lifecycle = try deleteInBatches(
            connection,
            """
            DELETE FROM vm_events WHERE event_id IN (SELECT event_id FROM vm_events WHERE event_id <= ?1 LIMIT ?2)
            """, [.integer(through), limit])
    }

    /// VMs that ended before the cutoff with no event left, with what hangs off them; then the
    /// aggregated counts of ended VMs, which age out like the events they stand for. Returns the VMs deleted.
    static func pruneEndedVMs(_ connection: SQLiteConnection, cutoff: SQLValue) throws(SQLiteError) -> Int {
        let vms = try connection.transaction { () throws(SQLiteError) in
            let gone = """
                SELECT vm_id FROM vms v WHERE ended_ns IS NOT NULL AND ended_ns < ?1
                AND NOT EXISTS (SELECT 1 FROM memory_faults f WHERE f.vm_id = v.vm_id)
                AND NOT EXISTS (SELECT 1 FROM conversions c WHERE c.vm_id = v.vm_id)
                AND NOT EXISTS (SELECT 1 FROM vm_events e WHERE e.vm_id = v.vm_id)
                """
            for table in ["memory_layout", "event_aggregates", "memory_checkpoints", "vms"] {
                try connection.query("DELETE FROM \(table) WHERE vm_id IN (\(gone))", [cutoff])
            }
            return connection.changes
        }
        try connection.transaction { () throws(SQLiteError) in
            try connection.query(
                """
                DELETE FROM event_aggregates WHERE second < ?1 / 1000000000
                AND vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NOT NULL)
                """, [cutoff])
        }
        return vms
    }

    /// The API audit ages out by its own time: admitted requests up to their chain's cut, refusal counts by second.
    static func pruneRequests(
        _ connection: SQLiteConnection, cutoff: SQLValue, limit: SQLValue, into report: inout PruneReport
    ) throws(SQLiteError) {
        if let through = try cutRequests(connection, cutoff: cutoff) {
            report.apiRequests = try deleteInBatches(
                connection,
                """
                DELETE FROM api_requests WHERE id IN (SELECT id FROM api_requests WHERE id <= ?1 LIMIT ?2)
                """, [.integer(through), limit])
        }
        report.refusalCounts = try connection.transaction { () throws(SQLiteError) in
            try connection.query("DELETE FROM api_refusals WHERE second < ?1 / 1000000000", [cutoff])
            return connection.changes
        }
    }

    /// Frees the space a few hundred pages at a time, each its own short transaction.
    static func vacuum(_ connection: SQLiteConnection) throws(SQLiteError) {
        while (try connection.scalar("PRAGMA freelist_count") ?? 0) > 0 {
            try connection.execute("PRAGMA incremental_vacuum(256)")
            try checkpoint(connection)
        }
    }

    /// Finds where the event chain can be cut and records the cut (the new genesis, and a
    /// `prunes` row for stream readers) before anything is deleted; nil when nothing goes.
    static func cutEvents(_ connection: SQLiteConnection, cutoff: SQLValue) throws(SQLiteError) -> Int64? {
        try connection.transaction { () throws(SQLiteError) -> Int64? in
            let running = "vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NULL)"
            // The oldest row that must stay: one at or after the cutoff, or one of a VM still known.
            let kept = try connection.scalar(
                """
                SELECT min(id) FROM (
                    SELECT min(event_id) AS id FROM memory_faults WHERE time_ns >= ?1 OR \(running)
                    UNION ALL SELECT min(event_id) FROM conversions WHERE requested_ns >= ?1 OR decision = 'pending' OR \(running)
                    UNION ALL SELECT min(event_id) FROM vm_events WHERE time_ns >= ?1 OR \(running))
                """, [cutoff])
            let head = try ChainLinker.loadHead(.events, connection)
            let start = try ChainLinker.genesis(.events, connection)?.throughID ?? 0
            let bound = min(kept.map { $0 - 1 } ?? Int64.max, head.id)
            let range = "event_id > ?1 AND event_id <= ?2"
            let values: [SQLValue] = [.integer(start), .integer(bound)]
            // The cut falls on the newest row at or below the bound: its chain value is the genesis.
            guard
                let through = try connection.scalar(
                    """
                    SELECT max(id) FROM (SELECT max(event_id) AS id FROM memory_faults WHERE \(range)
                        UNION ALL SELECT max(event_id) FROM conversions WHERE \(range)
                        UNION ALL SELECT max(event_id) FROM vm_events WHERE \(range)
                        UNION ALL SELECT max(event_id) FROM policy_applications WHERE \(range))
                    """, values), let chain = try chainValue(connection, eventID: through)
            else { return nil }
            let span =
                try connection.query(
                    """
                    SELECT sum(n), min(first), max(last) FROM (
                        SELECT count(*) AS n, min(time_ns) AS first, max(time_ns) AS last FROM memory_faults WHERE \(range)
                        UNION ALL SELECT count(*), min(requested_ns), max(requested_ns) FROM conversions WHERE \(range)
                        UNION ALL SELECT count(*), min(time_ns), max(time_ns) FROM vm_events WHERE \(range))
                    """, [.integer(start), .integer(through)]
                ).first ?? []
            let pruned = span.first?.integer ?? 0
            guard pruned > 0 else { return nil }
            let now = SQLValue.unsigned(MonotonicClock.wallNanos())
            try connection.query(
                """
                INSERT INTO chain_genesis (chain_name, through_id, chain, pruned, first_ns, last_ns, time_ns) VALUES ('events', ?, ?, ?, ?, ?, ?)
                """, [.integer(through), .text(chain), .integer(pruned), span[1], span[2], now])
            try connection.query(
                "INSERT INTO prunes (time_ns, cutoff_ns, through_event_id, events) VALUES (?, ?, ?, ?)",
                [now, cutoff, .integer(through), .integer(pruned)])
            return through
        }
    }

    /// The stored chain value of event `id`, whichever table holds it.
    static func chainValue(_ connection: SQLiteConnection, eventID id: Int64) throws(SQLiteError) -> String? {
        for table in AuditChain.Name.events.tables {
            if case .text(let chain)? = try connection.query(
                "SELECT chain FROM \(table.rawValue) WHERE event_id = ?", [.integer(id)]
            ).first?.first {
                return chain
            }
        }
        return nil
    }

    /// Where the request chain can be cut (every request up to it older than the cutoff), recorded as its genesis.
    static func cutRequests(_ connection: SQLiteConnection, cutoff: SQLValue) throws(SQLiteError) -> Int64? {
        try connection.transaction { () throws(SQLiteError) -> Int64? in
            let start = try ChainLinker.genesis(.requests, connection)?.throughID ?? 0
            let head = try ChainLinker.loadHead(.requests, connection)
            let kept = try connection.scalar("SELECT min(id) FROM api_requests WHERE time_ns >= ?", [cutoff])
            let bound = min(kept.map { $0 - 1 } ?? Int64.max, head.id)
            guard
                let row = try connection.query(
                    """
                    SELECT max(id), count(*), min(time_ns), max(time_ns) FROM api_requests WHERE id > ? AND id <= ?
                    """, [.integer(start), .integer(bound)]
                ).first, case .integer(let through) = row[0],
                case .text(let chain)? = try connection.query(
                    "SELECT chain FROM api_requests WHERE id = ?", [.integer(through)]
                ).first?.first
            else { return nil }
            try connection.query(
                """
                INSERT INTO chain_genesis (chain_name, through_id, chain, pruned, first_ns, last_ns, time_ns) VALUES ('requests', ?, ?, ?, ?, ?, ?)
                """, [.integer(through), .text(chain), row[1], row[2], row[3], .unsigned(MonotonicClock.wallNanos())])
            return through
        }
    }

    /// Runs `sql` (a DELETE of at most ?2 rows) in transactions of its own until it deletes nothing; returns the rows deleted.
    static func deleteInBatches(_ connection: SQLiteConnection, _ sql: String, _ values: [SQLValue]) throws(SQLiteError)
        -> Int
    {
        try deleteInBatches(connection) { () throws(SQLiteError) in
            try connection.query(sql, values)
            return connection.changes
        }
    }

    /// Runs `batch` (which deletes some rows and says how many) in transactions of its own until it
    /// deletes nothing, checkpointing between them; returns the rows deleted.
    static func deleteInBatches(_ connection: SQLiteConnection, _ batch: () throws(SQLiteError) -> Int)
        throws(SQLiteError) -> Int
    {
        var total = 0
        while true {
            let deleted = try connection.transaction("BEGIN IMMEDIATE", batch)
            total += deleted
            if deleted == 0 { return total }
            try checkpoint(connection)
        }
    }

    /// Deletes conversions up to `through`, a batch a transaction, adding what applied ones changed to their VMs' pruned totals.
    static func deleteConversions(_ connection: SQLiteConnection, through: Int64, limit: SQLValue) throws(SQLiteError)
        -> Int
    {
        try deleteInBatches(connection) { () throws(SQLiteError) in
            try connection.execute("DROP TABLE IF EXISTS temp.prune_batch")
            try connection.query(
                """
                CREATE TEMP TABLE prune_batch AS
                SELECT event_id, vm_id, direction, decision, changed_bytes FROM conversions WHERE event_id <= ?1 LIMIT ?2
                """, [.integer(through), limit])
            try connection.execute(
                """
                UPDATE vms SET
                    pruned_to_shared_bytes = pruned_to_shared_bytes + coalesce((SELECT sum(changed_bytes) FROM temp.prune_batch b
                        WHERE b.vm_id = vms.vm_id AND b.decision = 'applied' AND b.direction = 'to_shared'), 0),
                    pruned_to_private_bytes = pruned_to_private_bytes + coalesce((SELECT sum(changed_bytes) FROM temp.prune_batch b
                        WHERE b.vm_id = vms.vm_id AND b.decision = 'applied' AND b.direction = 'to_private'), 0)
                WHERE vm_id IN (SELECT vm_id FROM temp.prune_batch)
                """)
            try connection.execute("DELETE FROM conversions WHERE event_id IN (SELECT event_id FROM temp.prune_batch)")
            let count = connection.changes
            try connection.execute("DROP TABLE temp.prune_batch")
            return count
        }
    }

    /// Moves the WAL's pages into the database between batches (never waiting for
    /// readers), so the agent's next commit does not find a large WAL to checkpoint.
    static func checkpoint(_ connection: SQLiteConnection) throws(SQLiteError) {
        try connection.query("PRAGMA wal_checkpoint(PASSIVE)")
    }
}
