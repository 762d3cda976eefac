/// Refused API requests of one kind from one peer address in one second: a row of `api_refusals`.
public struct RefusalCount: Sendable, Equatable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        /// No token, or one this agent does not know.
        case unauthenticated
        /// A read-only token asking to change something.
        case forbidden
        /// A wrong token on the status page's sign-in form.
        case signInFailed = "sign_in_failed"
    }

    public var second: UInt64
    public var peer: String
    public var kind: Kind
    public var requests: UInt64

    public init(second: UInt64, peer: String, kind: Kind, requests: UInt64) {
        self.second = second; self.peer = peer; self.kind = kind; self.requests = requests
    }
}
