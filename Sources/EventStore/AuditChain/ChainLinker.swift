import MemoryModel
import SQLite

/// Extends both chains over the rows that became final, inside the writer's transaction:
/// one hash and one small update per row, in commit order. Its heads move only when
/// the transaction commits (`commit()`), so a failed batch leaves them where they were.
struct ChainLinker {
    struct Head: Equatable {
        var id: Int64
        var chain: [UInt8]
    }

    private(set) var heads: [AuditChain.Name: Head]
    private var staged: [AuditChain.Name: Head] = [:]

    /// Rows chained per read: bounds the memory of a catch-up over a store from before schema 9.
    static let page = 4096

    init(_ connection: SQLiteConnection) throws(SQLiteError) {
        var heads: [AuditChain.Name: Head] = [:]
        for name in AuditChain.Name.allCases { heads[name] = try Self.loadHead(name, connection) }
        self.heads = heads
    }

    /// The newest chained row of `name`, or its genesis when nothing after it is chained.
    static func loadHead(_ name: AuditChain.Name, _ connection: SQLiteConnection) throws(SQLiteError) -> Head {
        var best = try genesis(name, connection).map { Head(id: $0.throughID, chain: $0.chain) } ?? Head(id: 0, chain: AuditChain.zero)
        let tables: [AuditChain.Table] = name == .requests ? [.apiRequests] : [.memoryFaults, .conversions, .vmEvents, .policyApplications]
        for table in tables {
            let newest = try connection.query(
                "SELECT \(table.idColumn), chain FROM \(table.rawValue) WHERE chain IS NOT NULL ORDER BY \(table.idColumn) DESC LIMIT 1")
            guard let row = newest.first, case .integer(let id) = row[0], case .text(let hex) = row[1], id > best.id,
                  let value = SHA256.bytes(hex: hex), value.count == 32 else { continue }
            best = Head(id: id, chain: value)
        }
        return best
    }

    struct Genesis: Equatable {
        var throughID: Int64
        var chain: [UInt8]
        var pruned: Int64
        var firstNanos: UInt64?
        var lastNanos: UInt64?
        var timeNanos: UInt64
    }

    /// The newest cut of `name` (nil: never pruned since schema 9).
    static func genesis(_ name: AuditChain.Name, _ connection: SQLiteConnection) throws(SQLiteError) -> Genesis? {
        try connection.query("""
            SELECT through_id, chain, pruned, first_ns, last_ns, time_ns FROM chain_genesis WHERE chain_name = ?
            ORDER BY through_id DESC LIMIT 1
            """, [.text(name.rawValue)]).first.flatMap { row in
            guard case .text(let hex) = row[1], let chain = SHA256.bytes(hex: hex), chain.count == 32 else { return nil }
            return Genesis(throughID: row[0].integer, chain: chain, pruned: row[2].integer,
                           firstNanos: row[3] == .null ? nil : row[3].unsigned, lastNanos: row[4] == .null ? nil : row[4].unsigned,
                           timeNanos: row[5].unsigned)
        }
    }

    /// Chains every final row after the heads (call inside the transaction); returns the rows chained.
    /// `observe` sees each event row once, in chain order (what the memory checkpoints follow).
    @discardableResult
    mutating func extend(_ connection: SQLiteConnection,
                         observe: (AuditChain.Row) throws(SQLiteError) -> Void = { _ throws(SQLiteError) in }) throws(SQLiteError) -> Int {
        var linked = 0
        for name in AuditChain.Name.allCases {
            guard var head = staged[name] ?? heads[name] else { continue }
            while true {
                let rows = try AuditChain.rows(name, after: head.id, limit: Self.page, connection)
                for row in rows {
                    head.chain = AuditChain.link(head.chain, row.canonical)
                    head.id = row.id
                    try connection.statement(row.table.updateSQL).run([.text(SHA256.hexString(head.chain)), .integer(row.id)])
                    try observe(row)
                }
                linked += rows.count
                if rows.count < Self.page { break }
            }
            staged[name] = head
        }
        return linked
    }

    /// A linker whose heads cover every final row, chaining what is not yet in its own transaction.
    static func catchUp(_ connection: SQLiteConnection) throws(SQLiteError) -> ChainLinker {
        var linker = try ChainLinker(connection)
        try connection.transaction { () throws(SQLiteError) in try linker.extend(connection) }
        linker.commit()
        return linker
    }

    /// The transaction committed: the staged heads are the heads.
    mutating func commit() {
        for (name, head) in staged { heads[name] = head }
        staged = [:]
    }

    /// The transaction rolled back: forget what was staged.
    mutating func rollback() { staged = [:] }
}
