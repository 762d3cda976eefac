import Foundation
import Logging
import MemoryModel
import Platform
import SQLite
import Synchronization

/// Opening a store after an agent died: what its ring held goes in, its VMs are closed as lost.
extension EventStore {
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
                    } catch  where error.code & 0xFF == 19 {
                        // SQLITE_CONSTRAINT: already there.
                    }
                }
                applied += 1
            }
            return applied
        }
    }

    static func closeLostVMs(
        _ connection: SQLiteConnection, atNanos now: UInt64,
        replayed: Int
    ) throws(SQLiteError) -> RecoveryReport {
        try connection.transaction { () throws(SQLiteError) -> RecoveryReport in
            try connection.query(
                """
                UPDATE conversions SET decision = 'incomplete',
                       reason = reason || ' (the agent stopped before it completed; whether it took effect is unknown)'
                WHERE decision = 'pending' AND vm_id IN (SELECT vm_id FROM vms WHERE ended_ns IS NULL)
                """)
            let conversions = connection.changes
            try connection.query(
                """
                UPDATE vms SET ended_ns = ?, final_state = 'lost',
                       final_reason = 'the agent that ran it ended without recording how the VM ended'
                WHERE ended_ns IS NULL
                """, [.unsigned(now)])
            let vms = connection.changes
            return RecoveryReport(vms: vms, incompleteConversions: conversions, replayedRecords: replayed)
        }
    }

    /// Commits what is queued, stops the writer and gives up the database.
}
