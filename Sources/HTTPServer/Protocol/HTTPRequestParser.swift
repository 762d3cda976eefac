/// Why a request was refused before any handler saw it. The connection is
/// answered with `status` and closed.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String

    public init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status) \(code): \(message)" }
}

/// An incremental HTTP/1.x request parser: a pure state machine over bytes.
///
/// Supported subset (documented in the README): origin-form targets, HTTP/1.0
/// and 1.1, `Content-Length` bodies. Refused: a chunked body (411), any other
/// `Transfer-Encoding` (501), `Transfer-Encoding` with `Content-Length`,
/// repeated `Content-Length`, obsolete line folding, bare LF, control bytes or
/// invalid UTF-8 in a header (400), unknown methods (501), HTTP major versions
/// other than 1 (505), and anything past `HTTPLimits`.
public struct HTTPRequestParser: Sendable {
    public enum Result: Sendable, Equatable {
        /// More bytes are needed.
        case needMore
        /// A whole request; the first `consumed` bytes of the buffer belong to it.
        case request(HTTPRequest, consumed: Int)
        case failure(HTTPParseError)
    }

    /// Progress through a head that has not ended yet, so each call scans only new bytes.
    private struct HeadScan: Sendable {
        var scanned = 0
        var lineStart = 0
        var requestLine: Range<Int>?
        var headerLines: [Range<Int>] = []
    }

    private enum State: Sendable {
        case head(HeadScan)
        /// The head is parsed; waiting for `length` body bytes after `headLength`.
        case body(HTTPRequest, headLength: Int, length: Int)
    }

    public let limits: HTTPLimits
    private var state = State.head(HeadScan())

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// True once part of a request has been seen but not all of it.
    public var isWaitingForBody: Bool {
        if case .body = state { return true }
        return false
    }

    /// Parses the request at the start of `buffer`. After `.request`, the caller
    /// drops `consumed` bytes and calls again for a pipelined request.
    public mutating func parse(_ buffer: [UInt8]) -> Result {
        switch state {
        case .head(let scan):
            return parseHead(buffer, scan)
        case .body(let request, let headLength, let length):
            guard buffer.count - headLength >= length else { return .needMore }
            var complete = request
            complete.body = Array(buffer[headLength..<(headLength + length)])
            state = .head(HeadScan())
            return .request(complete, consumed: headLength + length)
        }
    }

    private mutating func parseHead(_ buffer: [UInt8], _ scan: HeadScan) -> Result {
        var scan = scan
        var index = scan.scanned
        while index < buffer.count {
            if buffer[index] == 0x0A {
                guard index > scan.lineStart, buffer[index - 1] == 0x0D else {
                    return .failure(HTTPParseError(400, "bad_request", "line ending without CR (bare LF)"))
                }
                let line = scan.lineStart..<(index - 1)
                scan.lineStart = index + 1
                if line.isEmpty {
                    // Tolerate empty lines before the request line (RFC 9112 2.2).
                    if let requestLine = scan.requestLine {
                        return finishHead(
                            buffer, requestLine: requestLine, headerLines: scan.headerLines, headLength: index + 1)
                    }
                } else if scan.requestLine == nil {
                    if line.count > limits.maxRequestLineBytes { return .failure(Self.lineTooLong(limits)) }
                    scan.requestLine = line
                } else {
                    scan.headerLines.append(line)
                    if scan.headerLines.count > limits.maxHeaderFields {
                        return .failure(
                            HTTPParseError(
                                431, "headers_too_large", "more than \(limits.maxHeaderFields) header fields"))
                    }
                }
            }
            index += 1
            if let requestLine = scan.requestLine {
                if index - requestLine.upperBound > limits.maxHeaderBytes + 2 {
                    return .failure(
                        HTTPParseError(
                            431, "headers_too_large", "header block larger than \(limits.maxHeaderBytes) bytes"))
                }
            } else if index - scan.lineStart > limits.maxRequestLineBytes + 1 {
                return .failure(Self.lineTooLong(limits))
            }
        }
        scan.scanned = buffer.count
        state = .head(scan)
        return .needMore
    }

    private static func lineTooLong(_ limits: HTTPLimits) -> HTTPParseError {
        HTTPParseError(414, "request_line_too_long", "request line longer than \(limits.maxRequestLineBytes) bytes")
    }

    private mutating func finishHead(
        _ buffer: [UInt8], requestLine: Range<Int>, headerLines: [Range<Int>],
        headLength: Int
    ) -> Result {
        state = .head(HeadScan())
        let request: HTTPRequest
        do {
            request = try Self.parseRequestLine(buffer[requestLine])
        } catch let error as HTTPParseError {
            return .failure(error)
        } catch {
            return .failure(HTTPParseError(400, "bad_request", "\(error)"))
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(headerLines.count)
        for line in headerLines {
            switch Self.parseHeader(buffer[line]) {
            case .success(let header): headers.append(header)
            case .failure(let error): return .failure(error)
            }
        }
        var complete = request
        complete.headers = headers
        switch bodyLength(of: complete) {
        case .failure(let error): return .failure(error)
        case .success(let length):
            if length == 0 { return .request(complete, consumed: headLength) }
            state = .body(complete, headLength: headLength, length: length)
            return parse(buffer)
        }
    }

    private static func parseRequestLine(_ line: ArraySlice<UInt8>) throws -> HTTPRequest {
        // METHOD SP TARGET SP VERSION, found by index (no intermediate arrays on the hot path).
        guard let firstSpace = line.firstIndex(of: 0x20),
            let secondSpace = line[(firstSpace + 1)...].firstIndex(of: 0x20),
            !line[(secondSpace + 1)...].contains(0x20),
            firstSpace > line.startIndex, secondSpace > firstSpace + 1
        else {
            throw HTTPParseError(400, "bad_request", "request line must be METHOD SP TARGET SP VERSION")
        }
        let methodBytes = line[line.startIndex..<firstSpace]
        let target = line[(firstSpace + 1)..<secondSpace]
        let version = line[(secondSpace + 1)...]
        guard methodBytes.allSatisfy(Self.isTokenByte) else {
            throw HTTPParseError(400, "bad_request", "method is not a token")
        }
        let v = version.startIndex
        guard version.count == 8, version[v] == UInt8(ascii: "H"), version[v + 1] == UInt8(ascii: "T"),
            version[v + 2] == UInt8(ascii: "T"), version[v + 3] == UInt8(ascii: "P"),
            version[v + 4] == UInt8(ascii: "/"),
            let major = Self.digit(version[v + 5]), version[v + 6] == UInt8(ascii: "."),
            let minor = Self.digit(version[v + 7])
        else {
            throw HTTPParseError(400, "bad_request", "malformed HTTP version")
        }
        guard major == 1 else {
            throw HTTPParseError(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served")
        }
        guard let method = Self.method(methodBytes) else {
            throw HTTPParseError(
                501, "method_not_implemented",
                "method \(String(decoding: methodBytes, as: UTF8.self)) is not implemented")
        }
        guard target.first == UInt8(ascii: "/"), target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPParseError(400, "bad_request", "request target must be an origin-form path of visible ASCII")
        }
        return HTTPRequest(method: method, target: String(decoding: target, as: UTF8.self), minorVersion: min(minor, 1))
    }

    private static let methods: [(bytes: [UInt8], method: HTTPMethod)] = HTTPMethod.allCases.map {
        (Array($0.rawValue.utf8), $0)
    }

    private static func method(_ bytes: ArraySlice<UInt8>) -> HTTPMethod? {
        if bytes.elementsEqual("GET".utf8) { return .GET }
        return methods.first { $0.bytes.elementsEqual(bytes) }?.method
    }

    private static func parseHeader(_ line: ArraySlice<UInt8>)
        -> Swift.Result<(name: String, value: String), HTTPParseError>
    {
        guard let first = line.first, first != 0x20, first != 0x09 else {
            return .failure(HTTPParseError(400, "bad_request", "obsolete header line folding"))
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
            return .failure(HTTPParseError(400, "bad_request", "header line without a name and colon"))
        }
        let name = line[line.startIndex..<colon]
        guard name.allSatisfy(isTokenByte) else {
            return .failure(HTTPParseError(400, "bad_request", "invalid header name"))
        }
        var value = line[(colon + 1)...]
        while let byte = value.first, byte == 0x20 || byte == 0x09 { value = value.dropFirst() }
        while let byte = value.last, byte == 0x20 || byte == 0x09 { value = value.dropLast() }
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            return .failure(
                HTTPParseError(400, "bad_request", "control byte in header \(String(decoding: name, as: UTF8.self))"))
        }
        guard let text = String(validating: value, as: UTF8.self) else {
            return .failure(
                HTTPParseError(400, "bad_request", "header \(String(decoding: name, as: UTF8.self)) is not valid UTF-8")
            )
        }
        return .success((String(decoding: name, as: UTF8.self), text))
    }

    private func bodyLength(of request: HTTPRequest) -> Swift.Result<Int, HTTPParseError> {
        var lengths: [String] = []
        var transferEncoding: String?
        var hosts = 0
        for header in request.headers {
            if header.name.caseInsensitiveEquals("Content-Length") {
                lengths.append(header.value)
            } else if header.name.caseInsensitiveEquals("Transfer-Encoding") {
                transferEncoding = header.value
            } else if header.name.caseInsensitiveEquals("Host") {
                hosts += 1
            }
        }
        if request.minorVersion == 1, hosts != 1 {
            return .failure(
                HTTPParseError(
                    400, "bad_request", hosts == 0 ? "HTTP/1.1 request without Host" : "more than one Host header"))
        }
        if let transferEncoding {
            if !lengths.isEmpty {
                return .failure(HTTPParseError(400, "bad_request", "Transfer-Encoding together with Content-Length"))
            }
            if transferEncoding.lowercased().contains("chunked") {
                return .failure(
                    HTTPParseError(
                        411, "length_required", "chunked request bodies are not accepted; send Content-Length"))
            }
            return .failure(
                HTTPParseError(501, "not_implemented", "Transfer-Encoding \(transferEncoding) is not implemented"))
        }
        guard let text = lengths.first else { return .success(0) }
        guard lengths.count == 1 else {
            return .failure(HTTPParseError(400, "bad_request", "more than one Content-Length"))
        }
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let length = Int(text)
        else {
            return .failure(HTTPParseError(400, "bad_request", "Content-Length is not a decimal number"))
        }
        guard length <= limits.maxBodyBytes else {
            return .failure(
                HTTPParseError(
                    413, "body_too_large", "body of \(length) bytes exceeds the limit of \(limits.maxBodyBytes)"))
        }
        return .success(length)
    }

    private static func digit(_ byte: UInt8) -> Int? {
        byte >= 0x30 && byte <= 0x39 ? Int(byte - 0x30) : nil
    }

    /// RFC 9110 tchar, as a 128-entry table.
    private static let tokenTable: [Bool] = (0..<128).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        byte < 128 && tokenTable[Int(byte)]
    }
}
