/// Refused API requests of one kind from one peer address in one second: a row of `api_refusals`.
public struct RefusalCount: Sendable, Equatable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        /// No token, or one this agent does not know.
        case unauthenticated
        /// A read-only token asking to change something.
        case forbidden
        /// A wrong token on the status page's sign-in form.
        case signInFailed = "sign_in_failed"
        /// A write refused before admission: no such endpoint or method, or a body or query that does not parse.
        case invalidWrite = "invalid_write"
        /// A token or sign-in refused unchecked while its address prefix had failed too often (429).
        case throttled
    }

    public var second: UInt64
    public var peer: String
    public var kind: Kind
    public var requests: UInt64

    public init(second: UInt64, peer: String, kind: Kind, requests: UInt64) {
        self.second = second
        self.peer = peer
        self.kind = kind
        self.requests = requests
    }
}
