import APITypes
import JSON
import MemoryModel

/// A row of a host's chain that does not extend what the fleet database holds: an edited,
/// deleted or inserted row, or a history rewritten under a head the host once showed.
public struct ChainBreak: Error, Sendable, Equatable, CustomStringConvertible {
    /// events or requests.
    public var chain: String
    /// The row that does not link (or the stored head the host no longer shows).
    public var id: Int64
    /// The last row verified before it.
    public var afterID: Int64
    /// The value the fleet computed or stored, and the one the host sent (nil: none).
    public var expected: String?
    public var found: String?
    public var reason: String

    public var description: String { reason }
}

/// The head of a host's chain as the fleet database keeps it: the last row verified, and its value.
public struct StoredChainHead: Sendable, Equatable {
    public var id: Int64
    public var chain: String
    public init(id: Int64, chain: String) {
        self.id = id
        self.chain = chain
    }
}

/// Follows one host's chain across pulls: starts from the head the fleet stored (or the
/// host's genesis on a first pull) and checks each row it is sent against it. Pure.
public struct ChainFollower: Sendable, Equatable {
    public let chain: String
    public private(set) var lastID: Int64
    public private(set) var value: [UInt8]
    /// Rows at or below this id are before the host's genesis (policy applications a prune kept): accepted, not verifiable.
    public let unverifiedThrough: Int64

    /// Where to start, and the stored head the host must still show (nil: nothing to check, or a prune covered it).
    public struct Start: Sendable, Equatable {
        public var follower: ChainFollower
        public var mustShow: StoredChainHead?
        /// A prune the fleet accepted: rows (from, through] the host cut before they were pulled.
        public var acceptedCut: (from: Int64, through: Int64, rows: Int64)?

        public static func == (a: Start, b: Start) -> Bool {
            a.follower == b.follower && a.mustShow == b.mustShow && a.acceptedCut?.from == b.acceptedCut?.from
                && a.acceptedCut?.through == b.acceptedCut?.through
        }
    }

    init(chain: String, lastID: Int64, value: [UInt8], unverifiedThrough: Int64) {
        self.chain = chain
        self.lastID = lastID
        self.value = value
        self.unverifiedThrough = unverifiedThrough
    }

    /// Takes a chain up at a row the host shows now (a database from before chains were kept): trusted on first use.
    public init?(adopting entry: JSONValue?, at id: Int64, chain: String) {
        guard case .string(let hex)? = entry?["chain"], let value = SHA256.bytes(hex: hex), value.count == 32,
            case .number(let text)? = entry?[chain == "events" ? "event_id" : "id"], Int64(text) == id
        else { return nil }
        self.init(chain: chain, lastID: id, value: value, unverifiedThrough: 0)
    }

    /// The start of a pull of `chain`, from what the fleet stored and the host's live head.
    public static func start(chain: String, stored: StoredChainHead?, live: ChainHead) -> Result<Start, ChainBreak> {
        let genesisID = live.genesis?.throughId ?? 0
        let genesisValue = live.genesis.flatMap { SHA256.bytes(hex: $0.chain) } ?? ChainLink.zero
        guard let stored, let storedValue = SHA256.bytes(hex: stored.chain), storedValue.count == 32 else {
            return .success(
                Start(
                    follower: ChainFollower(
                        chain: chain, lastID: genesisID, value: genesisValue, unverifiedThrough: genesisID),
                    mustShow: nil, acceptedCut: nil))
        }
        if genesisID < stored.id {
            // The host must still show the head it once did; the pull goes on from it.
            guard live.lastId >= stored.id else {
                return .failure(
                    ChainBreak(
                        chain: chain, id: stored.id, afterID: stored.id, expected: stored.chain, found: live.chain,
                        reason: """
                            the host's \(chain) chain ends at \(live.lastId), before the head \(stored.id) it showed when last pulled: rows were removed
                            """))
            }
            return .success(
                Start(
                    follower: ChainFollower(
                        chain: chain, lastID: stored.id, value: storedValue, unverifiedThrough: genesisID),
                    mustShow: stored, acceptedCut: nil))
        }
        if genesisID == stored.id, live.genesis?.chain != stored.chain {
            return .failure(
                ChainBreak(
                    chain: chain, id: stored.id, afterID: stored.id, expected: stored.chain, found: live.genesis?.chain,
                    reason: """
                        the host's \(chain) chain was cut at \(stored.id), the head last pulled, but its genesis value differs from that head's: \
                        the history before the cut was rewritten
                        """))
        }
        // A prune cut away rows the fleet had not pulled yet: accepted, from the host's genesis.
        return .success(
            Start(
                follower: ChainFollower(
                    chain: chain, lastID: genesisID, value: genesisValue, unverifiedThrough: genesisID),
                mustShow: nil, acceptedCut: (from: stored.id, through: genesisID, rows: live.genesis?.pruned ?? 0)))
    }

    /// Checks the host's row at the stored head: same id, same value.
    public static func showsHead(_ head: StoredChainHead, entry: JSONValue?, chain: String) -> ChainBreak? {
        let found: String? = if case .string(let value)? = entry?["chain"] { value } else { nil }
        let id: Int64? =
            if case .number(let text)? = entry?[chain == "events" ? "event_id" : "id"] { Int64(text) } else { nil }
        guard id == head.id, found == head.chain else {
            return ChainBreak(
                chain: chain, id: head.id, afterID: head.id, expected: head.chain, found: found,
                reason: """
                    the host's \(chain == "events" ? "event" : "request") \(head.id) \(id == head.id ? "now has chain value \(found?.prefix(16) ?? "none")…" : "is gone"), \
                    not the \(head.chain.prefix(16))… it had when last pulled: its history was rewritten
                    """)
        }
        return nil
    }

    /// Checks `entries` (id order, each the API's JSON) in turn; returns how many lead the
    /// list valid, and the break at the first that is not.
    public mutating func accept(_ entries: [JSONValue]) -> (valid: Int, broke: ChainBreak?) {
        let noun = chain == "events" ? "event" : "request"
        for (index, entry) in entries.enumerated() {
            let id: Int64? =
                if case .number(let text)? = entry[chain == "events" ? "event_id" : "id"] { Int64(text) } else { nil }
            let found: String? = if case .string(let value)? = entry["chain"] { value } else { nil }
            guard let id else {
                return (
                    index,
                    ChainBreak(
                        chain: chain, id: lastID, afterID: lastID, expected: nil, found: found,
                        reason: "a \(noun) without an id")
                )
            }
            if id <= unverifiedThrough { continue }
            let computed = ChainLink.link(value, ChainLink.canonical(entry: entry))
            let hex = SHA256.hexString(computed)
            guard found == hex else {
                return (
                    index,
                    ChainBreak(
                        chain: chain, id: id, afterID: lastID, expected: hex, found: found,
                        reason: """
                            \(noun) \(id) does not extend the chain from \(noun) \(lastID): \(found == nil ? "it carries no chain value" : "its value differs"); \
                            it, or a \(noun) before it, was altered, inserted or removed
                            """)
                )
            }
            value = computed
            lastID = id
        }
        return (entries.count, nil)
    }

    /// The head to store once the rows accepted are written.
    public var head: StoredChainHead { StoredChainHead(id: lastID, chain: SHA256.hexString(value)) }
}
