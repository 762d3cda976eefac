/// Hard limits on what one connection may send (documented in the README).
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
    /// Time a keep-alive connection may sit idle (or a body may stall): closed after.
    public var idleTimeoutNanos: UInt64 = 60_000_000_000
    /// Open connections at most; the next one gets 503 and is closed.
    public var maxConnections = 4096

    public init() {}
}
