import APITypes
import MemoryModel
import SQLite

/// Recomputes a chain from its genesis and names the first row whose stored value
/// differs (an edited, deleted or inserted row), and any chained row past its end.
public enum ChainVerifier {
    public struct Report: Sendable, Equatable {
        public var chain: AuditChain.Name
        /// Rows recomputed.
        public var rows: Int
        /// The last row that matched, and its value (hex).
        public var lastID: Int64
        public var lastChain: String
        /// Where the recomputation started.
        public var genesisID: Int64
        public var genesisChain: String
        /// The first mismatch (nil: the chain holds).
        public var problem: Problem?
    }

    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var id: Int64
        /// The table the row is in.
        public var table: String
        /// The value stored with the row (nil: none) and the one its bytes and its predecessor give.
        public var stored: String?
        public var computed: String?
        public var reason: String

        public var description: String { reason }
    }

    /// Verifies `name` over the rows of `connection` (one read transaction, so a live agent's commits do not move it).
    public static func verify(_ name: AuditChain.Name, _ connection: SQLiteConnection) throws(SQLiteError) -> Report {
        try connection.transaction("BEGIN") { () throws(SQLiteError) -> Report in
            let genesis = try ChainLinker.genesis(name, connection)
            var previous = genesis?.chain ?? AuditChain.zero
            var after = genesis?.throughID ?? 0
            var report = Report(
                chain: name, rows: 0, lastID: after, lastChain: SHA256.hexString(previous), genesisID: after,
                genesisChain: SHA256.hexString(previous), problem: nil)
            let noun = name == .events ? "event" : "request"
            while true {
                let rows = try AuditChain.rows(name, after: after, limit: ChainLinker.page, connection)
                for row in rows {
                    let computed = SHA256.hexString(AuditChain.link(previous, row.canonical))
                    guard row.stored == computed else {
                        let why =
                            row.stored == nil
                            ? "\(noun) \(row.id) (\(row.table.rawValue)) has no chain value, though every \(noun) before it is final: it was inserted, or the one before it was removed"
                            : "\(noun) \(row.id) (\(row.table.rawValue)) does not match its chain value: it, or the \(noun) before it, was altered, inserted or removed"
                        report.problem = Problem(
                            id: row.id, table: row.table.rawValue, stored: row.stored, computed: computed, reason: why)
                        return report
                    }
                    previous = AuditChain.link(previous, row.canonical)
                    after = row.id
                    report.rows += 1
                    report.lastID = row.id
                    report.lastChain = computed
                }
                if rows.count < ChainLinker.page { break }
            }
            // Past the last final event only rows that wait for a pending conversion, and none of them chained.
            for table in name.tables {
                let stray = try connection.scalar(
                    "SELECT min(\(table.idColumn)) FROM \(table.rawValue) WHERE \(table.idColumn) > ? AND chain IS NOT NULL",
                    [.integer(after)])
                if let stray {
                    report.problem = Problem(
                        id: stray, table: table.rawValue, stored: nil, computed: nil,
                        reason: """
                            \(noun) \(stray) (\(table.rawValue)) carries a chain value after the chain's last final \(noun) (\(after)): \
                            it was inserted, or a conversion before it was set back to pending
                            """)
                    return report
                }
            }
            return report
        }
    }

    /// The head of `name` as the API reports it: the newest chained row, its value, the rows since the genesis, and their time.
    public static func head(_ name: AuditChain.Name, _ connection: SQLiteConnection) throws(SQLiteError) -> ChainHead {
        try connection.transaction("BEGIN") { () throws(SQLiteError) -> ChainHead in
            let genesis = try ChainLinker.genesis(name, connection)
            let head = try ChainLinker.loadHead(name, connection)
            let start = genesis?.throughID ?? 0
            var count: Int64 = 0
            for table in name.tables {
                count +=
                    try connection.scalar(
                        "SELECT count(*) FROM \(table.rawValue) WHERE \(table.idColumn) > ? AND \(table.idColumn) <= ?",
                        [.integer(start), .integer(head.id)]) ?? 0
            }
            let newest =
                head.id > start ? try AuditChain.rows(name, after: head.id - 1, limit: 1, connection).first : nil
            return ChainHead(
                lastId: head.id, chain: SHA256.hexString(head.chain), count: count, timeNs: newest?.timeNanos,
                genesis: genesis.map {
                    ChainGenesis(
                        throughId: $0.throughID, chain: SHA256.hexString($0.chain), pruned: $0.pruned,
                        firstNs: $0.firstNanos,
                        lastNs: $0.lastNanos, timeNs: $0.timeNanos)
                })
        }
    }
}
