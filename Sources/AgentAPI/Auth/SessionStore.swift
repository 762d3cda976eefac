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

    /// Sessions held at most. Past it, the principal holding the most gives up its oldest.
    public static let capacity = 10_000
    /// Sessions one principal holds at most; its own oldest goes first, never another's.
    public static let perPrincipal = 64
    public let lifetimeNanos: UInt64
    private var sessions: [String: Session] = [:]

    public init(lifetimeNanos: UInt64) { self.lifetimeNanos = lifetimeNanos }

    public var count: Int { sessions.count }

    /// A new session for `principal`; returns the id that goes in the cookie.
    public mutating func create(for principal: Principal, nowNanos: UInt64) -> String {
        removeExpired(nowNanos: nowNanos)
        let own = sessions.filter { $0.value.principal.name == principal.name }
        if own.count >= Self.perPrincipal {
            evictOldest(of: own)
        } else if sessions.count >= Self.capacity {
            // Full with every principal under its share: the largest holder gives one up (the table
            // holds at most capacity / perPrincipal principals' worth, so that is never a lone session).
            let holders = Dictionary(grouping: sessions, by: { $0.value.principal.name })
            if let largest = holders.max(by: { $0.value.count < $1.value.count })?.value {
                evictOldest(of: Dictionary(uniqueKeysWithValues: largest.map { ($0.key, $0.value) }))
            }
        }
        var generator = SystemRandomNumberGenerator()  // getrandom(2): fit for secrets
        let id = (0..<4).map { _ in generator.next() as UInt64 }.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
        sessions[Self.key(id)] = Session(principal: principal, expiresNanos: nowNanos &+ lifetimeNanos)
        return id
    }

    private mutating func evictOldest(of candidates: [String: Session]) {
        if let oldest = candidates.min(by: { $0.value.expiresNanos < $1.value.expiresNanos })?.key {
            sessions[oldest] = nil
        }
    }

    /// Who a session id belongs to, while it lasts.
    public func principal(for id: String, nowNanos: UInt64) -> Principal? {
        guard id.utf8.count == 64, let session = sessions[Self.key(id)], session.expiresNanos > nowNanos else {
            return nil
        }
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
