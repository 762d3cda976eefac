/// Where a chain starts after a `db prune`: the value of the last row cut away, and what the cut removed.
public struct ChainGenesis: Codable, Sendable, Equatable {
    public var throughId: Int64
    public var chain: String
    /// Rows the newest cut removed, and their time span.
    public var pruned: Int64
    public var firstNs: UInt64?
    public var lastNs: UInt64?
    /// When the cut was made.
    public var timeNs: UInt64

    public init(throughId: Int64, chain: String, pruned: Int64, firstNs: UInt64?, lastNs: UInt64?, timeNs: UInt64) {
        self.throughId = throughId
        self.chain = chain
        self.pruned = pruned
        self.firstNs = firstNs
        self.lastNs = lastNs
        self.timeNs = timeNs
    }
}

/// The newest row of a chain: its id, its chain value (hex SHA-256), the rows since the genesis, and the row's time.
public struct ChainHead: Codable, Sendable, Equatable {
    public var lastId: Int64
    public var chain: String
    public var count: Int64
    public var timeNs: UInt64?
    /// Absent when nothing was ever pruned: the chain starts at 32 zero bytes.
    public var genesis: ChainGenesis?

    public init(lastId: Int64, chain: String, count: Int64, timeNs: UInt64?, genesis: ChainGenesis?) {
        self.lastId = lastId
        self.chain = chain
        self.count = count
        self.timeNs = timeNs
        self.genesis = genesis
    }
}

/// `GET /v1/audit/head`: the heads of the event chain and of the admitted-request chain.
public struct AuditHead: Codable, Sendable, Equatable {
    public var events: ChainHead
    public var requests: ChainHead

    public init(events: ChainHead, requests: ChainHead) {
        self.events = events
        self.requests = requests
    }
}
