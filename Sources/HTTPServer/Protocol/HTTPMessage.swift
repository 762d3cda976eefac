import JSON

/// The methods this server understands; anything else is answered 501.
public enum HTTPMethod: String, Sendable, CaseIterable {
    case GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT, QUERY

    /// A method that asks to change something.
    public var isWrite: Bool { self == .POST || self == .PUT || self == .DELETE || self == .PATCH }
}

/// One parsed request. Header names are kept as sent; lookups ignore case.
public struct HTTPRequest: Sendable, Equatable {
    public var method: HTTPMethod
    /// The request target as sent (`/v1/vms?limit=10`).
    public var target: String
    /// HTTP/1.x minor version: 0 or 1.
    public var minorVersion: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        method: HTTPMethod, target: String, minorVersion: Int = 1,
        headers: [(name: String, value: String)] = [], body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
    }

    /// The target without its query.
    public var path: Substring {
        // Search the UTF-8 view: the target is ASCII, so no grapheme breaking is needed.
        target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? target[...]
    }

    /// The query string after `?`, if any.
    public var query: Substring? {
        target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[target.utf8.index(after: $0)...] }
    }

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// Whether the connection stays open after the response (HTTP/1.1 default yes, 1.0 default no).
    public var keepAlive: Bool {
        guard let connection = header("Connection") else { return minorVersion == 1 }
        let lowered = connection.lowercased()
        if minorVersion == 0 { return lowered.contains("keep-alive") }
        return !lowered.contains("close")
    }

    public static func == (a: HTTPRequest, b: HTTPRequest) -> Bool {
        a.method == b.method && a.target == b.target && a.minorVersion == b.minorVersion && a.body == b.body
            && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// One response. `Content-Length` and `Connection` are added when encoded.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// A body written over time instead of `body`: sent without a length, ended by closing the connection.
    public var stream: HTTPStreamBody?

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: Int, contentType: String, body: [UInt8], headers: [(name: String, value: String)] = []) {
        self.init(
            status: status,
            headers: headers.isEmpty ? [("Content-Type", contentType)] : [("Content-Type", contentType)] + headers,
            body: body)
    }

    public init(
        status: Int, contentType: String, body: some Sequence<UInt8>, headers: [(name: String, value: String)] = []
    ) {
        self.init(status: status, contentType: contentType, body: Array(body), headers: headers)
    }

    /// The error shape every MemGate endpoint uses: `{"error": {"code": ..., "message": ...}}`.
    /// A streamed response (`Content-Type` among `headers`); `body.open` gets the stream once the head is sent.
    public static func streaming(status: Int = 200, headers: [(name: String, value: String)], body: HTTPStreamBody)
        -> HTTPResponse
    {
        var response = HTTPResponse(status: status, headers: headers)
        response.stream = body
        return response
    }

    public static func error(
        _ status: Int, code: String, message: String,
        headers: [(name: String, value: String)] = []
    ) -> HTTPResponse {
        var body = JSONWriter(capacity: 64 + message.utf8.count)
        body.beginObject()
        body.key("error")
        body.beginObject()
        body.field("code", code)
        body.field("message", message)
        body.endObject()
        body.endObject()
        return HTTPResponse(
            status: status, contentType: "application/json", body: body.bytes + [0x0A], headers: headers)
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.status == b.status && a.body == b.body && (a.stream == nil) == (b.stream == nil)
            && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Standard reason phrases for the statuses MemGate sends.
public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}

extension String {
    /// ASCII case-insensitive comparison (header names are ASCII tokens).
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        var j = b.startIndex
        for x in a {
            let y = b[j]
            // ASCII letters differ only in bit 5; header names are tokens, so this is exact for them.
            guard x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
            else { return false }
            j = b.index(after: j)
        }
        return true
    }
}
