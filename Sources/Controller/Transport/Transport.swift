import Foundation

/// One HTTP request to one host of the fleet.
public struct HostRequest: Sendable, Equatable {
    public var host: Int
    public var method: String
    /// Path and query, e.g. `/v1/vms?limit=10`.
    public var path: String
    public var headers: [String: String]
    public var body: [UInt8]?
    /// When the whole command must be done (`--max-duration`): no attempt runs past it, whatever
    /// the host's own deadline leaves.
    public var commandDeadline: Date?

    public init(
        host: Int, method: String = "GET", path: String, headers: [String: String] = [:], body: [UInt8]? = nil,
        commandDeadline: Date? = nil
    ) {
        self.host = host
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.commandDeadline = commandDeadline
    }

    /// Safe to send again after a failure that may have reached the host.
    /// Safe to send again: a read, or a write carrying an Idempotency-Key (the agent answers a repeat with the first answer).
    public var isIdempotent: Bool { method == "GET" || method == "HEAD" || headers["Idempotency-Key"] != nil }
}

/// What came back: any HTTP status (4xx and 5xx are answers, not transport failures).
public struct HostResponse: Sendable, Equatable {
    public var status: Int
    /// Lower-cased names.
    public var headers: [String: String]
    public var body: [UInt8]
    public var seconds: Double

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = [], seconds: Double = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds
    }
}

/// Why no HTTP answer came.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Connection refused, no route, DNS: the host is down or wrong.
    case unreachable(String)
    case timeout(String)
    case tls(String)
    case failed(String)

    public var description: String {
        switch self {
        case .unreachable(let message): "unreachable: \(message)"
        case .timeout(let message): "timeout: \(message)"
        case .tls(let message): "TLS: \(message)"
        case .failed(let message): message
        }
    }
}

/// Runs a batch of requests against the fleet, concurrently; one result per request, in order.
/// The fan-out logic above it (merging, partial failure, exit codes) is tested with a fake.
public protocol Transport: Sendable {
    func perform(_ requests: [HostRequest]) -> [Result<HostResponse, TransportError>]
    /// Like `perform`, and when request `i` is answered `next(i, answer)` may name the request that follows it for
    /// the same host, sent at once (no host waits for another's answer); the last answer of each chain is returned.
    func perform(_ requests: [HostRequest], next: (Int, Result<HostResponse, TransportError>) -> HostRequest?)
        -> [Result<HostResponse, TransportError>]
}

extension Transport {
    /// Chains phase by phase (a transport that cannot interleave them): correct, not pipelined.
    public func perform(_ requests: [HostRequest], next: (Int, Result<HostResponse, TransportError>) -> HostRequest?)
        -> [Result<HostResponse, TransportError>]
    {
        var results = perform(requests)
        var pending = Array(results.indices)
        while !pending.isEmpty {
            let followUps = pending.compactMap { index in next(index, results[index]).map { (index, $0) } }
            guard !followUps.isEmpty else { break }
            for ((index, _), answer) in zip(followUps, perform(followUps.map(\.1))) { results[index] = answer }
            pending = followUps.map(\.0)
        }
        return results
    }
}
