import APITypes
import EventStore
import HTTPServer
import Platform
import Synchronization

/// HTTP request counts by route, method and status, and latency per route.
public final class APIMetrics: Sendable {
    struct Key: Hashable, Sendable {
        let route: APIRoute
        let method: HTTPMethod
        let status: Int
    }
    private struct State {
        var requests: [Key: UInt64] = [:]
        var latency: [APIRoute: LatencyHistogram] = [:]
        var refusals: [RefusalCount.Kind: UInt64] = [:]
    }
    private let state = Mutex(State())
    /// The server whose connections and buffers are reported (set once it listens).
    private let server = Mutex<HTTPServer?>(nil)

    /// Reports `server`'s connection and buffer gauges from now on.
    public func attach(_ server: HTTPServer) {
        self.server.withLock { $0 = server }
    }

    func refused(_ kind: RefusalCount.Kind) {
        state.withLock { $0.refusals[kind, default: 0] += 1 }
    }

    public init() {}

    public func observe(route: APIRoute, method: HTTPMethod, status: Int, nanos: UInt64) {
        state.withLock { state in
            state.requests[Key(route: route, method: method, status: status), default: 0] += 1
            state.latency[route, default: LatencyHistogram()].observe(nanos: nanos)
        }
    }

    /// Prometheus text lines for the HTTP metrics.
    func render(into out: inout PrometheusText) {
        let (requests, latency, refusals) = state.withLock { ($0.requests, $0.latency, $0.refusals) }
        out.help(
            "memgate_api_refusals_total",
            "Requests refused for want of a valid token or role, and failed sign-ins, by kind.", type: "counter")
        for kind in RefusalCount.Kind.allCases {
            out.sample("memgate_api_refusals_total", ["kind": kind.rawValue], Double(refusals[kind] ?? 0))
        }
        if let server = server.withLock({ $0 }) {
            out.help("memgate_http_connections", "Open HTTP connections (TCP and Unix socket).", type: "gauge")
            out.sample("memgate_http_connections", [:], Double(server.connectionCount))
            out.help(
                "memgate_http_buffered_bytes", "Request and response bytes the HTTP connections hold.", type: "gauge")
            out.sample("memgate_http_buffered_bytes", [:], Double(server.bufferedBytes))
            out.help(
                "memgate_http_buffered_bytes_peak",
                "The most bytes the HTTP connections have held at once since the agent started.", type: "gauge")
            out.sample("memgate_http_buffered_bytes_peak", [:], Double(server.peakBufferedBytes))
        }
        out.help("memgate_http_requests_total", "HTTP requests by route, method and status.", type: "counter")
        for (key, count) in requests.sorted(by: {
            ($0.key.route.rawValue, $0.key.method.rawValue, $0.key.status) < (
                $1.key.route.rawValue, $1.key.method.rawValue, $1.key.status
            )
        }) {
            out.sample(
                "memgate_http_requests_total",
                ["route": key.route.rawValue, "method": key.method.rawValue, "status": "\(key.status)"], Double(count))
        }
        out.help(
            "memgate_http_request_duration_seconds", "Time from a complete request to its response, by route.",
            type: "histogram")
        for (route, histogram) in latency.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out.histogram("memgate_http_request_duration_seconds", ["route": route.rawValue], histogram)
        }
    }
}

/// Prometheus text exposition format 0.0.4.
struct PrometheusText {
    private(set) var text = ""

    mutating func help(_ name: String, _ help: String, type: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String] = [:], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text +=
                "{"
                + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escape($0.value))\"" }.joined(
                    separator: ",") + "}"
        }
        text += " " + (value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)") + "\n"
    }

    mutating func histogram(_ name: String, _ labels: [String: String], _ histogram: LatencyHistogram) {
        for (le, count) in histogram.cumulative {
            sample(name + "_bucket", labels.merging(["le": le]) { a, _ in a }, Double(count))
        }
        sample(name + "_sum", labels, histogram.sumSeconds)
        sample(name + "_count", labels, Double(histogram.count))
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
