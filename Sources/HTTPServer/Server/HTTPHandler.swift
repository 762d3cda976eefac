/// Who sent a request, as the transport knows it.
public enum HTTPTransport: Sendable, Equatable {
    /// TCP, with the peer's address (`127.0.0.1:41234`).
    case tcp(peer: String)
    /// The Unix socket, with the peer's uid (SO_PEERCRED), when the kernel told it.
    case unix(uid: Int?)

    /// Who the peer is without its port: "127.0.0.1", "[::1]", or "unix uid 1000".
    public var peerAddress: String {
        switch self {
        case .tcp(let peer):
            guard let colon = peer.lastIndex(of: ":") else { return peer }
            return String(peer[..<colon])
        case .unix(let uid):
            return "unix uid \(uid.map(String.init) ?? "unknown")"
        }
    }
}

/// What the server knows about a request besides its bytes.
public struct RequestContext: Sendable {
    public var transport: HTTPTransport
    /// CLOCK_MONOTONIC nanoseconds when the request was complete.
    public var receivedNanos: UInt64
}

/// Turns requests into responses. The server never lets a handler that may
/// block run on its event-loop thread.
public protocol HTTPHandler: Sendable {
    /// Called on the event-loop thread: answer at once if that cannot block
    /// (no locks held for long, no I/O), or return nil to have `respond` run
    /// on the worker pool.
    func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse?
    /// Called on a worker thread; may block.
    func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse
    /// Called on the event-loop thread for a connection in the token-only reserve: whether the
    /// request carries a credential the handler accepts (cheap, no I/O).
    func presentsValidCredential(_ request: HTTPRequest) -> Bool
}

extension HTTPHandler {
    public func presentsValidCredential(_ request: HTTPRequest) -> Bool { false }
}
