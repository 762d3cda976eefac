import SQLite

/// `GET /v1/vms/{id}/history.svg`: a VM's conversions bucketed by time, in SQLite.
extension EventQueries {
    public struct VMHistory: Sendable, Equatable {
        public struct Column: Sendable, Equatable {
            public var index: Int
            public var sharedDelta: Int64
            public var applied: Int
            public var denied: Int
        }
        public var name: String
        public var createdNanos: UInt64
        public var endedNanos: UInt64?
        public var dataRAMBytes: UInt64
        /// Shared bytes before the first conversion the store still holds.
        public var initialSharedBytes: UInt64
        public var columns: [Column]
    }

    /// The VM's history in `columns` equal slices of [created, ended or `nowNanos`); nil for a VM the store never had.
    public func vmHistory(_ vmID: Int64, columns: Int, nowNanos: UInt64) throws(EventStoreError) -> VMHistory? {
        try withConnection { connection throws(SQLiteError) in
            try connection.transaction("BEGIN") { () throws(SQLiteError) -> VMHistory? in
                let vm = try connection.query(
                    """
                    SELECT name, created_ns, ended_ns, data_ram_size, initial_state, pruned_to_shared_bytes, pruned_to_private_bytes
                    FROM vms WHERE vm_id = ?
                    """, [.integer(vmID)])
                guard let row = vm.first, row.count == 7 else { return nil }
                let created = row[1].unsigned
                let ended = row[2] == .null ? nil : row[2].unsigned
                let size = row[3].unsigned
                // What pruned conversions changed is kept on the VM, so the remaining history starts at the right level.
                let initial = Int64(row[4].text == "shared" ? size : 0) + row[5].integer - row[6].integer
                let span = max((ended ?? nowNanos) &- created, 1)
                let buckets = try connection.rows(
                    """
                    SELECT min(max((coalesce(completed_ns, requested_ns) - ?1) * ?2 / ?3, 0), ?2 - 1) AS col,
                           sum(CASE WHEN decision = 'applied' THEN CASE direction WHEN 'to_shared' THEN changed_bytes ELSE -changed_bytes END
                               ELSE 0 END),
                           sum(decision = 'applied'), sum(decision = 'denied')
                    FROM conversions WHERE vm_id = ?4 GROUP BY col ORDER BY col
                    """, [.unsigned(created), .integer(Int64(columns)), .unsigned(span), .integer(vmID)]
                ) { row in
                    VMHistory.Column(
                        index: Int(row.int64(0)), sharedDelta: row.int64(1), applied: Int(row.int64(2)),
                        denied: Int(row.int64(3)))
                }
                return VMHistory(
                    name: row[0].text, createdNanos: created, endedNanos: ended, dataRAMBytes: size,
                    initialSharedBytes: UInt64(max(initial, 0)), columns: buckets)
            }
        }
    }
}
