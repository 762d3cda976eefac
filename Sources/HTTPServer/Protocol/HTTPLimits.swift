/// Hard limits on what one connection, and all of them together, may hold
/// (documented in the README under "HTTP limits").
///
/// Memory: a connection buffers at most one request (request line + headers +
/// body) plus one read, and at most `maxPendingOutputBytes` of unsent responses
/// plus the one being written; across all connections the server stops reading
/// from connections that hold buffered bytes once `maxBufferedBytes` are held.
public struct HTTPLimits: Sendable, Equatable {
    /// Longest request line, CRLF excluded: 414 beyond.
    public var maxRequestLineBytes = 8 << 10
    /// Largest header block after the request line: 431 beyond.
    public var maxHeaderBytes = 16 << 10
    /// Most header fields: 431 beyond.
    public var maxHeaderFields = 100
    /// Largest `Content-Length` accepted: 413 beyond.
    public var maxBodyBytes = 1 << 20
    /// Time from a request's first byte to the end of its headers: 408 after.
    public var headerTimeoutNanos: UInt64 = 10_000_000_000
    /// Time from the end of the headers to the end of the body, however the bytes
    /// trickle in (never renewed by progress): 408 after.
    public var bodyTimeoutNanos: UInt64 = 30_000_000_000
    /// Time a keep-alive connection may sit idle between requests: closed after.
    public var idleTimeoutNanos: UInt64 = 60_000_000_000
    /// Response bytes waiting for a peer to read them; at or above it the server
    /// neither reads from nor answers that connection until it drains.
    public var maxPendingOutputBytes = 256 << 10
    /// Time unsent output may make no progress (a peer that does not read): closed after.
    public var writeStallTimeoutNanos: UInt64 = 30_000_000_000
    /// Open TCP connections at most; the next one gets 503 and is closed.
    public var maxConnections = 4096
    /// Open TCP connections from one peer network (`peerPrefix`) at most; beyond, only the reserve.
    public var maxConnectionsPerPeer = 256
    /// What counts as one peer for `maxConnectionsPerPeer` and the credential throttles: IPv4 /24, IPv6 /64.
    public var peerPrefix = AddressPrefix()
    /// TCP connections beyond `maxConnections`, or beyond a network's cap, that only a request with a
    /// valid credential may hold: one that presents none once its headers are read gets 503 and is closed.
    /// None by default (a handler that knows no credentials); memgate-agent keeps 256.
    public var tokenReservedConnections = 0
    /// Reserve connections one network may hold before they presented a credential.
    public var reservePerNetwork = 4
    /// Time a connection in the reserve has to present its credential; closed after.
    public var reserveHeaderTimeoutNanos: UInt64 = 2_000_000_000
    /// Unix-socket connections at most, slots of their own that TCP clients can never take.
    public var maxUnixConnections = 64
    /// Request and response bytes buffered across all connections; above it, connections
    /// that hold buffered bytes are not read until the total drains below it.
    public var maxBufferedBytes = 256 << 20

    public init() {}
}
