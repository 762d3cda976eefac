import CNet
import Foundation
import Glibc

/// A plain blocking HTTP/1.1 client over one socket: sends raw bytes and reads
/// responses. For tests, probes and the demo; the controller uses libcurl.
public final class BlockingHTTPClient {
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public struct ClientError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    private let fd: Int32
    /// The socket, for tests that read a response by hand (a stream's head).
    public var descriptor: Int32 { fd }
    private var buffer: [UInt8] = []
    private var closed = false

    /// Connects to `127.0.0.1:port` style addresses, or a Unix socket path.
    /// `source`: the local address to connect from (any of 127.0.0.0/8 on loopback), so one test can be many peers.
    public init(host: String = "127.0.0.1", port: UInt16, source: String? = nil, timeoutMilliseconds: Int32 = 10_000)
        throws(ClientError)
    {
        fd = source.map { cnet_connect_tcp_from(host, port, $0) } ?? cnet_connect_tcp(host, port)
        guard fd >= 0 else {
            throw ClientError(
                message: "connect \(host):\(port) from \(source ?? "any"): \(String(cString: strerror(errno)))")
        }
        cnet_set_timeouts(fd, timeoutMilliseconds)
    }

    public init(unixPath: String, timeoutMilliseconds: Int32 = 10_000) throws(ClientError) {
        fd = cnet_connect_unix(unixPath)
        guard fd >= 0 else {
            throw ClientError(message: "connect unix:\(unixPath): \(String(cString: strerror(errno)))")
        }
        cnet_set_timeouts(fd, timeoutMilliseconds)
    }

    deinit { close(fd) }

    /// Sends bytes as they are (a whole request, or part of one).
    public func send(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { raw in
                // Safety: the slice stays alive for the call; MSG_NOSIGNAL keeps a closed peer from raising SIGPIPE.
                Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw ClientError(message: "send: \(String(cString: strerror(errno)))") }
            offset += sent
        }
    }

    public func send(_ text: String) throws(ClientError) { try send(Array(text.utf8)) }

    /// A well-formed request with the usual headers.
    public func request(
        _ method: String, _ target: String, headers: [String: String] = [:],
        body: [UInt8] = []
    ) throws(ClientError) -> Response {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: memgate\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try send(Array(head.utf8) + body)
        guard let response = try readResponse(isHead: method == "HEAD") else {
            throw ClientError(message: "connection closed before a response to \(method) \(target)")
        }
        return response
    }

    /// Reads one response; nil when the server closed without sending one.
    public func readResponse(isHead: Bool = false) throws(ClientError) -> Response? {
        while true {
            if let (response, consumed) = Self.parse(buffer, isHead: isHead) {
                buffer.removeFirst(consumed)
                return response
            }
            guard try fill() else {
                if buffer.isEmpty { return nil }
                throw ClientError(message: "connection closed inside a response (\(buffer.count) bytes buffered)")
            }
        }
    }

    /// The next bytes of a streamed body (after `readResponse` took the head): what is
    /// buffered, else one read. Empty at EOF.
    public func readChunk() throws(ClientError) -> [UInt8] {
        if buffer.isEmpty, try !fill() { return [] }
        defer { buffer.removeAll() }
        return buffer
    }

    /// Shuts the socket down both ways: the server sees the peer leave.
    public func hangUp() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// True once the server has closed the connection (reads EOF or a reset).
    public func isClosedByPeer() -> Bool {
        do { return try !fill() } catch { return true }
    }

    /// Reads more bytes; false at EOF.
    private func fill() throws(ClientError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let count = chunk.withUnsafeMutableBytes { raw in
            // Safety: reads at most the chunk's size into it.
            recv(fd, raw.baseAddress, raw.count, 0)
        }
        if count == 0 { return false }
        if count < 0 {
            if errno == ECONNRESET { return false }
            throw ClientError(message: "recv: \(String(cString: strerror(errno)))")
        }
        buffer += chunk[0..<count]
        return true
    }

    /// Parses a response with a Content-Length body from the start of `bytes`. Pure.
    static func parse(_ bytes: [UInt8], isHead: Bool) -> (Response, Int)? {
        guard let end = bytes.firstRange(of: [13, 10, 13, 10]) else { return nil }
        let lines = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        guard let statusLine = lines.first else { return nil }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let length = isHead ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        guard bytes.count - end.upperBound >= length else { return nil }
        let body = Array(bytes[end.upperBound..<(end.upperBound + length)])
        return (Response(status: status, headers: headers, body: body), end.upperBound + length)
    }
}
