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
        public var vms: Int
        /// Rows of `api_requests` and `api_refusals` older than the cutoff.
        public var apiRequests: Int
        public var refusalCounts: Int
    }

    /// Creates or upgrades the schema and, unless an agent is recording into the
    /// database, applies the events a killed agent left in its ring. Returns the
    /// versions before and after, and the ring records applied.
    public static func migrate(path: String, migrations: [Migration]? = nil) throws(EventStoreError) -> (from: Int, to: Int, fromRing: Int) {
        try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            let (from, to) = try Migrator.migrate(connection, try migrations ?? Migrator.bundled())
            // A running agent owns its ring; only a free database's ring is ours to apply.
            guard let lock = try? WriterLock(databasePath: path), FileManager.default.fileExists(atPath: path + "-ring") else {
                return (from, to, 0)
            }
            defer { withExtendedLifetime(lock) {} }
            let applied = try EventStore.apply(try EventRing(databasePath: path), to: connection)
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
            return CheckReport(integrity: integrity, schemaVersion: version, binaryVersion: binary,
                               vms: try count("SELECT count(*) FROM vms"),
                               faults: try count("SELECT count(*) FROM memory_faults"),
                               conversions: try count("SELECT count(*) FROM conversions"),
                               pendingConversions: try count("SELECT count(*) FROM conversions WHERE decision = 'pending'"),
                               incompleteConversions: try count("SELECT count(*) FROM conversions WHERE decision = 'incomplete'"))
        }
    }

    /// Rows each prune transaction deletes: small enough that an agent's commit never
    /// waits for one longer than a few milliseconds.
    public static let pruneBatch = 1000

    /// Deletes API audit rows older than `cutoffNanos`, and events older than it of VMs that have ended, then VMs that
    /// ended before the cutoff and have nothing left; VMs still known (not ended) keep
    /// every row. Works in small transactions of `batch` rows, so an agent recording
    /// into the same database is never held up for long; what a deleted applied
    /// conversion changed is added to its VM's pruned totals in the same transaction,
    /// so `vm_memory_state` stays exact. Frees the space with an incremental vacuum.
    public static func prune(path: String, olderThan cutoffNanos: UInt64, batch: Int = pruneBatch) throws(EventStoreError) -> PruneReport {
        try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            try Migrator.migrate(connection, try Migrator.bundled())
            try connection.execute("PRAGMA foreign_keys = ON")
            let cutoff = SQLValue.unsigned(cutoffNanos)
            let limit = SQLValue.integer(Int64(max(batch, 1)))
            // Remember the highest ids first: deleting the newest rows must not let them be handed out again.
            try connection.transaction { () throws(SQLiteError) in
                try connection.execute("""
                    INSERT INTO id_watermarks (name, last_id)
                    VALUES ('event', max(\(EventStore.highestEventIDs))),
                           ('vm', coalesce((SELECT max(vm_id) FROM vms), 0))
                    ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)
                    """)
            }
            // The newest event this prune deletes: stream readers resuming from before it are told.
            let ended = "vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NOT NULL)"
            let deletedThrough = try connection.scalar("""
                SELECT max(id) FROM (
                    SELECT max(event_id) AS id FROM memory_faults WHERE time_ns < ?1 AND \(ended)
                    UNION ALL SELECT max(event_id) FROM conversions WHERE requested_ns < ?1 AND \(ended)
                    UNION ALL SELECT max(event_id) FROM vm_events WHERE time_ns < ?1 AND \(ended))
                """, [cutoff])
            var faults = 0
            while true {
                let deleted = try connection.transaction { () throws(SQLiteError) in
                    try connection.query("""
                        DELETE FROM memory_faults WHERE event_id IN (
                            SELECT event_id FROM memory_faults WHERE time_ns < ?1 AND vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NOT NULL)
                            LIMIT ?2)
                        """, [cutoff, limit])
                    return connection.changes
                }
                faults += deleted
                if deleted == 0 { break }
                try checkpoint(connection)
            }
            var conversions = 0
            while true {
                let deleted = try connection.transaction { () throws(SQLiteError) in
                    try connection.execute("DROP TABLE IF EXISTS temp.prune_batch")
                    try connection.query("""
                        CREATE TEMP TABLE prune_batch AS
                        SELECT event_id, vm_id, direction, decision, changed_bytes FROM conversions
                        WHERE requested_ns < ?1 AND vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NOT NULL) LIMIT ?2
                        """, [cutoff, limit])
                    try connection.execute("""
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
                conversions += deleted
                if deleted == 0 { break }
                try checkpoint(connection)
            }
            var lifecycle = 0
            while true {
                let deleted = try connection.transaction { () throws(SQLiteError) in
                    try connection.query("""
                        DELETE FROM vm_events WHERE event_id IN (SELECT event_id FROM vm_events WHERE time_ns < ?1 AND \(ended) LIMIT ?2)
                        """, [cutoff, limit])
                    return connection.changes
                }
                lifecycle += deleted
                if deleted == 0 { break }
                try checkpoint(connection)
            }
            if let deletedThrough, faults + conversions + lifecycle > 0 {
                try connection.transaction { () throws(SQLiteError) in
                    try connection.query("INSERT INTO prunes (time_ns, cutoff_ns, through_event_id, events) VALUES (?, ?, ?, ?)", [
                        .unsigned(MonotonicClock.wallNanos()), cutoff, .integer(deletedThrough), .integer(Int64(faults + conversions + lifecycle))])
                }
            }
            let vms = try connection.transaction { () throws(SQLiteError) in
                let gone = """
                    SELECT vm_id FROM vms v WHERE ended_ns IS NOT NULL AND ended_ns < ?1
                    AND NOT EXISTS (SELECT 1 FROM memory_faults f WHERE f.vm_id = v.vm_id)
                    AND NOT EXISTS (SELECT 1 FROM conversions c WHERE c.vm_id = v.vm_id)
                    AND NOT EXISTS (SELECT 1 FROM vm_events e WHERE e.vm_id = v.vm_id)
                    """
                try connection.query("DELETE FROM memory_layout WHERE vm_id IN (\(gone))", [cutoff])
                try connection.query("DELETE FROM event_aggregates WHERE vm_id IN (\(gone))", [cutoff])
                try connection.query("DELETE FROM vms WHERE vm_id IN (\(gone))", [cutoff])
                return connection.changes
            }
            // Aggregated counts of ended VMs age out like the events they stand for.
            try connection.transaction { () throws(SQLiteError) in
                try connection.query("""
                    DELETE FROM event_aggregates WHERE second < ?1 / 1000000000
                    AND vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NOT NULL)
                    """, [cutoff])
            }
            // The API audit ages out by its own time: admitted requests a batch at a time, refusal counts by second.
            var apiRequests = 0
            while true {
                let deleted = try connection.transaction { () throws(SQLiteError) in
                    try connection.query(
                        "DELETE FROM api_requests WHERE rowid IN (SELECT rowid FROM api_requests WHERE time_ns < ?1 LIMIT ?2)",
                        [cutoff, limit])
                    return connection.changes
                }
                apiRequests += deleted
                if deleted == 0 { break }
                try checkpoint(connection)
            }
            let refusalCounts = try connection.transaction { () throws(SQLiteError) in
                try connection.query("DELETE FROM api_refusals WHERE second < ?1 / 1000000000", [cutoff])
                return connection.changes
            }
            // Free the space a few hundred pages at a time, each its own short transaction.
            while (try connection.scalar("PRAGMA freelist_count") ?? 0) > 0 {
                try connection.execute("PRAGMA incremental_vacuum(256)")
                try checkpoint(connection)
            }
            return PruneReport(faults: faults, conversions: conversions, vms: vms, apiRequests: apiRequests, refusalCounts: refusalCounts)
        }
    }

    /// Moves the WAL's pages into the database between batches (never waiting for
    /// readers), so the agent's next commit does not find a large WAL to checkpoint.
    static func checkpoint(_ connection: SQLiteConnection) throws {
        try connection.query("PRAGMA wal_checkpoint(PASSIVE)")
    }
}
