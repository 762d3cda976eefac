import EventStore

/// Counts refused requests in memory and hands them out a second at a time, so a
/// flood of refused requests costs the store a few rows a second, not one row each.
/// Pure: the caller supplies the time and writes what comes back.
public struct RefusalLedger: Sendable {
    /// Addresses a second that get rows of their own; the rest count under `otherPeer`.
    public static let peersPerSecond = 16
    public static let otherPeer = "other"

    private struct Key: Hashable {
        var peer: String
        var kind: RefusalCount.Kind
    }
    private var second: UInt64 = 0
    private var counts: [Key: UInt64] = [:]
    private var peers: Set<String> = []

    public init() {}

    /// Counts one refusal at `second`; returns the counts of an earlier second it closes.
    public mutating func note(peer: String, kind: RefusalCount.Kind, second now: UInt64) -> [RefusalCount] {
        let closed = now != second ? drain() : []
        second = now
        var name = peer
        if !peers.contains(peer) {
            if peers.count < Self.peersPerSecond { peers.insert(peer) } else { name = Self.otherPeer }
        }
        counts[Key(peer: name, kind: kind), default: 0] += 1
        return closed
    }

    /// The counts of a second that has passed (nil-cost when there are none).
    public mutating func drain(before now: UInt64) -> [RefusalCount] {
        now > second ? drain() : []
    }

    /// Everything counted so far (at shutdown).
    public mutating func drain() -> [RefusalCount] {
        defer {
            counts.removeAll()
            peers.removeAll()
        }
        return counts.map { RefusalCount(second: second, peer: $0.key.peer, kind: $0.key.kind, requests: $0.value) }
            .sorted { ($0.peer, $0.kind.rawValue) < ($1.peer, $1.kind.rawValue) }
    }
}
