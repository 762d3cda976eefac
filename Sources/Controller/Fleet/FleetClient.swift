import APITypes
import Foundation

/// Why one host did not give a usable answer.
public enum HostFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case transport(TransportError)
    /// The agent answered with an API error.
    case api(status: Int, code: String, message: String)
    /// The answer was not what API v1 promises.
    case malformed(String)

    public var description: String {
        switch self {
        case .transport(let error): "\(error)"
        case .api(let status, let code, let message): "\(status) \(code): \(message)"
        case .malformed(let message): "malformed answer: \(message)"
        }
    }

    /// One word for tables: unreachable, timeout, tls, unauthorized, forbidden, conflict, rejected, error.
    public var kind: String {
        switch self {
        case .transport(.unreachable): "unreachable"
        case .transport(.timeout): "timeout"
        case .transport(.tls): "tls"
        case .transport(.failed): "error"
        case .api(401, _, _): "unauthorized"
        case .api(403, _, _): "forbidden"
        case .api(404, _, _): "not found"
        case .api(409, _, _), .api(412, _, _): "conflict"
        case .api(422, _, _): "rejected"
        case .api: "error"
        case .malformed: "error"
        }
    }
}

/// One host's answer to a fan-out.
public struct HostOutcome<T: Sendable>: Sendable {
    public var host: HostEntry
    public var result: Result<T, HostFailure>
    public var seconds: Double

    public init(host: HostEntry, result: Result<T, HostFailure>, seconds: Double) {
        self.host = host
        self.result = result
        self.seconds = seconds
    }

    /// The same outcome with its value transformed.
    public func map<U: Sendable>(_ transform: (T) -> U) -> HostOutcome<U> {
        HostOutcome<U>(host: host, result: result.map(transform), seconds: seconds)
    }

    public var value: T? { try? result.get() }

    /// A write whose answer did not come back in time may still have been applied.
    public var mayHaveApplied: Bool {
        if case .failure(.transport(.timeout)) = result { return true }
        return false
    }
    public var failure: HostFailure? { if case .failure(let f) = result { f } else { nil } }
}

/// The fleet as API v1 clients see it: every call fans out over `transport`
/// and returns one outcome per host, in inventory order.
public final class FleetClient: Sendable {
    public let hosts: [HostEntry]
    let transport: Transport
    /// When the whole command must be done: every request of every phase ends by then (nil: each request has its own deadline only).
    public let commandDeadline: Date?

    public init(hosts: [HostEntry], transport: Transport, commandDeadline: Date? = nil) {
        self.hosts = hosts
        self.transport = transport
        self.commandDeadline = commandDeadline
    }

    /// The same fleet, with every request of every phase from now on ending within `seconds`: one deadline per
    /// command, each host getting what is left of it.
    public func within(seconds: Double) -> FleetClient {
        FleetClient(hosts: hosts, transport: transport, commandDeadline: Date(timeIntervalSinceNow: seconds))
    }

    /// The raw answers to one request per selected host.
    /// `commandDeadline`: no attempt runs past it (a command's `--max-duration`).
    public func send(
        _ method: String = "GET", _ path: (Int) -> String, to indices: [Int]? = nil,
        headers: (Int) -> [String: String] = { _ in [:] }, body: [UInt8]? = nil,
        commandDeadline: Date? = nil
    ) -> [HostOutcome<HostResponse>] {
        let targets = indices ?? Array(hosts.indices)
        let requests = targets.map {
            request(
                $0, method, path($0), headers($0), body,
                deadline: [commandDeadline, self.commandDeadline].compactMap { $0 }.min())
        }
        let results = transport.perform(requests)
        return zip(targets, results).map { outcome($0, $1) }
    }

    /// One request per selected host, and after each answer the request `next` names for that host (nil: done), sent
    /// at once: a host's phases follow each other without waiting for the other hosts. Returns each host's last answer.
    public func sendChained(
        _ method: String, _ path: (Int) -> String, to indices: [Int]? = nil, body: [UInt8]? = nil,
        next: (Int, HostOutcome<HostResponse>) -> (
            method: String, path: String, headers: [String: String], body: [UInt8]?
        )?
    )
        -> [HostOutcome<HostResponse>]
    {
        let targets = indices ?? Array(hosts.indices)
        let results = transport.perform(
            targets.map { request($0, method, path($0), [:], body, deadline: commandDeadline) }
        ) { position, result in
            let host = targets[position]
            guard let following = next(host, outcome(host, result)) else { return nil }
            return request(
                host, following.method, following.path, following.headers, following.body, deadline: commandDeadline)
        }
        return zip(targets, results).map { outcome($0, $1) }
    }

    /// Every write carries a key of its own, kept across the transport's retries: a repeat is answered, not applied twice.
    private func request(
        _ host: Int, _ method: String, _ path: String, _ headers: [String: String], _ body: [UInt8]?,
        deadline: Date?
    ) -> HostRequest {
        var named = headers
        if method != "GET", method != "HEAD", named["Idempotency-Key"] == nil {
            named["Idempotency-Key"] = "memgatectl-\(UUID().uuidString)"
        }
        return HostRequest(
            host: host, method: method, path: path, headers: named, body: body, commandDeadline: deadline)
    }

    private func outcome(_ index: Int, _ result: Result<HostResponse, TransportError>) -> HostOutcome<HostResponse> {
        switch result {
        case .success(let response):
            if (200..<300).contains(response.status) {
                return HostOutcome(host: hosts[index], result: .success(response), seconds: response.seconds)
            }
            return HostOutcome(
                host: hosts[index], result: .failure(Self.apiFailure(response)), seconds: response.seconds)
        case .failure(let error):
            return HostOutcome(host: hosts[index], result: .failure(.transport(error)), seconds: 0)
        }
    }

    /// GET `path` on every host and decode `T`.
    public func get<T: Decodable & Sendable>(
        _ path: String, as type: T.Type, on indices: [Int]? = nil,
        commandDeadline: Date? = nil
    ) -> [HostOutcome<T>] {
        send("GET", { _ in path }, to: indices, commandDeadline: commandDeadline).map { Self.decode($0, as: type) }
    }

    public static func decode<T: Decodable & Sendable>(_ outcome: HostOutcome<HostResponse>, as type: T.Type)
        -> HostOutcome<T>
    {
        switch outcome.result {
        case .success(let response):
            do {
                return HostOutcome(
                    host: outcome.host,
                    result: .success(try APIJSON.decoder().decode(T.self, from: Data(response.body))),
                    seconds: outcome.seconds)
            } catch {
                return HostOutcome(
                    host: outcome.host, result: .failure(.malformed("\(T.self): \(error)")), seconds: outcome.seconds)
            }
        case .failure(let failure):
            return HostOutcome(host: outcome.host, result: .failure(failure), seconds: outcome.seconds)
        }
    }

    static func apiFailure(_ response: HostResponse) -> HostFailure {
        if let body = try? JSONDecoder().decode(APIErrorBody.self, from: Data(response.body)) {
            return .api(status: response.status, code: body.error.code, message: body.error.message)
        }
        return .api(
            status: response.status, code: "http_\(response.status)",
            message: String(decoding: response.body.prefix(200), as: UTF8.self))
    }

    /// The index of a host given by name or URL.
    public func index(of name: String) -> Int? {
        hosts.firstIndex { $0.name == name || $0.url == name }
    }
}

/// Rows from many hosts, merged. Pure.
public enum Merge {
    /// Every host's rows tagged with the host, sorted by `key` (then host, for a stable order).
    public static func rows<Row: Sendable, Key: Comparable>(_ outcomes: [HostOutcome<[Row]>], by key: (Row) -> Key)
        -> [(host: String, row: Row)]
    {
        var merged: [(host: String, row: Row)] = []
        for outcome in outcomes {
            for row in outcome.value ?? [] { merged.append((outcome.host.name, row)) }
        }
        return merged.enumerated().sorted { a, b in
            let ka = key(a.element.row), kb = key(b.element.row)
            return ka != kb ? ka < kb : a.offset < b.offset
        }.map(\.element)
    }

    /// 0 when every host answered, 1 when any failed.
    public static func exitStatus<T>(_ outcomes: [HostOutcome<T>]) -> Int32 {
        outcomes.allSatisfy { $0.failure == nil } ? 0 : 1
    }
}
