import MemoryModel

/// Browser sessions of the status page: `POST /login` trades a valid token for a
/// random session id, kept here with the token's name and role until it expires,
/// is signed out, or its token leaves the token file. The cookie holds only that
/// id (never the token), so it is different on every agent and for every sign-in.
/// Ids are kept as their SHA-256, so a lookup's time says nothing about a stored id.
/// Pure apart from the random id; the clock is passed in.
public struct SessionStore: Sendable {
    struct Session: Sendable {
        let principal: Principal
        let expiresNanos: UInt64
    }

    /// Sessions held at most; beyond, the one closest to expiring goes first.
    public static let capacity = 10_000
    public let lifetimeNanos: UInt64
    private var sessions: [String: Session] = [:]

    public init(lifetimeNanos: UInt64) { self.lifetimeNanos = lifetimeNanos }

    public var count: Int { sessions.count }

    /// A new session for `principal`; returns the id that goes in the cookie.
    public mutating func create(for principal: Principal, nowNanos: UInt64) -> String {
        removeExpired(nowNanos: nowNanos)
        if sessions.count >= Self.capacity, let oldest = sessions.min(by: { $0.value.expiresNanos < $1.value.expiresNanos })?.key {
            sessions[oldest] = nil
        }
        var generator = SystemRandomNumberGenerator()  // getrandom(2): fit for secrets
        let id = (0..<4).map { _ in generator.next() as UInt64 }.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
        sessions[Self.key(id)] = Session(principal: principal, expiresNanos: nowNanos &+ lifetimeNanos)
        return id
    }

    /// Who a session id belongs to, while it lasts.
    public func principal(for id: String, nowNanos: UInt64) -> Principal? {
        guard id.utf8.count == 64, let session = sessions[Self.key(id)], session.expiresNanos > nowNanos else { return nil }
        return session.principal
    }

    /// Signs a session out; true if it existed.
    @discardableResult
    public mutating func revoke(_ id: String) -> Bool {
        sessions.removeValue(forKey: Self.key(id)) != nil
    }

    /// After the token file is read again: only sessions whose token is still there
    /// with the same role survive.
    public mutating func keepOnly(_ tokens: TokenStore) {
        let valid = tokens.principals
        sessions = sessions.filter { valid.contains($0.value.principal) }
    }

    mutating func removeExpired(nowNanos: UInt64) {
        sessions = sessions.filter { $0.value.expiresNanos > nowNanos }
    }

    static func key(_ id: String) -> String { SHA256.hex(Array(id.utf8)) }
}

/// Failed sign-ins per peer address: at most `limit` in any `windowNanos`; then
/// the peer waits, whatever token it tries. Bounded: the fewest addresses are kept.
public struct SignInThrottle: Sendable {
    public let limit: Int
    public let windowNanos: UInt64
    public static let capacity = 4096
    private var failures: [String: (start: UInt64, count: Int)] = [:]

    public init(limit: Int = 10, windowNanos: UInt64 = 60_000_000_000) {
        self.limit = limit
        self.windowNanos = windowNanos
    }

    static let overflow = "other"

    /// Seconds until `peer` may try again, or nil when it may try now.
    public func retryAfter(peer: String, nowNanos: UInt64) -> UInt64? {
        let peer = failures[peer] == nil && failures.count >= Self.capacity ? Self.overflow : peer
        guard let entry = failures[peer], entry.count >= limit, nowNanos &- entry.start < windowNanos else { return nil }
        return (windowNanos - (nowNanos &- entry.start)) / 1_000_000_000 + 1
    }

    public mutating func failed(peer: String, nowNanos: UInt64) {
        var peer = peer
        if failures.count >= Self.capacity, failures[peer] == nil {
            failures = failures.filter { nowNanos &- $0.value.start < windowNanos }
            // Still full: new addresses share one allowance rather than go uncounted.
            if failures.count >= Self.capacity { peer = Self.overflow }
        }
        if let entry = failures[peer], nowNanos &- entry.start < windowNanos {
            failures[peer] = (entry.start, entry.count + 1)
        } else {
            failures[peer] = (nowNanos, 1)
        }
    }
}
