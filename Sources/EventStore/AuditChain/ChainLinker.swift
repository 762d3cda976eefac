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
    /// Whether event rows may be chained as they are inserted (`linkInline`): nothing in the store waits behind a
    /// pending conversion, so the next event inserted is the next link. Decided after each transaction.
    private(set) var inlineReady = false
    private var stagedInlineReady: Bool?
    /// Rows chained as they were inserted, and rows chained by reading them back (committed ones only).
    private(set) var linkedInline = 0
    private(set) var linkedReadBack = 0
    private var stagedCounts = (inline: 0, readBack: 0)

    /// Rows chained per read: bounds the memory of a catch-up over a store from before schema 9.
    static let page = 4096

    init(_ connection: SQLiteConnection) throws(SQLiteError) {
        var heads: [AuditChain.Name: Head] = [:]
        for name in AuditChain.Name.allCases { heads[name] = try Self.loadHead(name, connection) }
        self.heads = heads
    }

    /// The newest chained row of `name`, or its genesis when nothing after it is chained.
    static func loadHead(_ name: AuditChain.Name, _ connection: SQLiteConnection) throws(SQLiteError) -> Head {
        var best =
            try genesis(name, connection).map { Head(id: $0.throughID, chain: $0.chain) }
            ?? Head(id: 0, chain: AuditChain.zero)
        for table in name.tables {
            let newest = try connection.query(
                "SELECT \(table.idColumn), chain FROM \(table.rawValue) WHERE chain IS NOT NULL ORDER BY \(table.idColumn) DESC LIMIT 1"
            )
            guard let row = newest.first, case .integer(let id) = row[0], case .text(let hex) = row[1], id > best.id,
                let value = SHA256.bytes(hex: hex), value.count == 32
            else { continue }
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
        try connection.query(
            """
            SELECT through_id, chain, pruned, first_ns, last_ns, time_ns FROM chain_genesis WHERE chain_name = ?
            ORDER BY through_id DESC LIMIT 1
            """, [.text(name.rawValue)]
        ).first.flatMap { row in
            guard case .text(let hex) = row[1], let chain = SHA256.bytes(hex: hex), chain.count == 32 else {
                return nil
            }
            return Genesis(
                throughID: row[0].integer, chain: chain, pruned: row[2].integer,
                firstNanos: row[3] == .null ? nil : row[3].unsigned, lastNanos: row[4] == .null ? nil : row[4].unsigned,
                timeNanos: row[5].unsigned)
        }
    }

    /// Chains every final row after the heads (call inside the transaction); returns the rows chained.
    /// `observe` sees each event row once, in chain order (what the memory checkpoints follow).
    @discardableResult
    mutating func extend(
        _ connection: SQLiteConnection,
        observe: (AuditChain.Row) throws(SQLiteError) -> Void = { _ throws(SQLiteError) in }
    ) throws(SQLiteError) -> Int {
        var linked = 0
        for name in AuditChain.Name.allCases {
            guard var head = staged[name] ?? heads[name] else { continue }
            while true {
                let rows = try AuditChain.rows(name, after: head.id, limit: Self.page, connection)
                for row in rows {
                    head.chain = AuditChain.link(head.chain, row.canonical)
                    head.id = row.id
                    try connection.statement(row.table.updateSQL).run([
                        .text(SHA256.hexString(head.chain)), .integer(row.id),
                    ])
                    try observe(row)
                }
                linked += rows.count
                stagedCounts.readBack += rows.count
                if rows.count < Self.page { break }
            }
            staged[name] = head
            if name == .events { stagedInlineReady = try EventQueries.firstPending(after: head.id, connection) == nil }
        }
        return linked
    }

    /// What `linkInline` did with a write.
    enum Inline {
        /// An event insert, now carrying its chain value.
        case linked(AuditChain.Row)
        /// Not an event insert (a VM row, an aggregate, an admitted request...): the events chain is not concerned.
        case other
        /// An event that cannot be linked as it is inserted (a pending conversion, a finish, a policy application, whose id
        /// SQLite gives): this batch's later events wait for `extend`.
        case stop
    }

    /// Chains an event insert from the values it binds (`ValueRow`: the same renderer as a row read back), appending its
    /// chain value to the statement, so the row needs no read-back and no update. Call only while `inlineReady` and
    /// before `stop` in this batch; rows must come in id order.
    mutating func linkInline(_ write: inout EventWriter.Write) -> Inline {
        let values = ValueRow(write.values)
        let chained: (table: AuditChain.Table, sql: String, canonical: [UInt8], time: UInt64)
        switch write.ringStatement {
        case .insertFaultWithAccess?:
            chained = (
                .memoryFaults, EventStore.insertFaultChained, AuditChain.canonicalFault(values), values.unsigned(3)
            )
        case .insertConversion?, .insertVMConversion?:
            guard values.text(9) != ConversionDecision.pending.rawValue else { return .stop }
            let sql =
                write.ringStatement == .insertConversion
                ? EventStore.insertConversionChained : EventStore.insertVMConversionChained
            chained = (.conversions, sql, AuditChain.canonicalConversion(values), values.unsigned(3))
        case .insertFault?, .finishConversion?:
            return .stop
        case .insertAPIRequest?:
            return .other
        case nil:
            if write.sql == EventStore.insertVMEvent {
                chained = (
                    .vmEvents, EventStore.insertVMEventChained, AuditChain.canonicalVMEvent(values), values.unsigned(2)
                )
            } else if write.sql.hasPrefix("INSERT INTO policy_applications")
                || write.sql.hasPrefix("UPDATE conversions")
            {
                return .stop
            } else {
                return .other
            }
        }
        guard var head = staged[.events] ?? heads[.events], values.int64(0) > head.id else { return .stop }
        head.chain = AuditChain.link(head.chain, chained.canonical)
        head.id = values.int64(0)
        staged[.events] = head
        let hex = SHA256.hexString(head.chain)
        write.sql = chained.sql
        write.values.append(.text(hex))
        stagedCounts.inline += 1
        return .linked(
            AuditChain.Row(
                id: head.id, table: chained.table, canonical: chained.canonical, stored: hex, timeNanos: chained.time,
                applied: chained.table == .conversions ? AuditChain.appliedChange(values) : nil))
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
        if let ready = stagedInlineReady { inlineReady = ready }
        stagedInlineReady = nil
        linkedInline += stagedCounts.inline
        linkedReadBack += stagedCounts.readBack
        stagedCounts = (0, 0)
    }

    /// The transaction rolled back: forget what was staged; the next batch links by reading back.
    mutating func rollback() {
        staged = [:]
        stagedCounts = (0, 0)
        stagedInlineReady = nil
        inlineReady = false
    }
}
