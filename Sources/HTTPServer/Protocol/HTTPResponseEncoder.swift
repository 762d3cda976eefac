/// Serializes a response head. Pure; the body is sent as a second buffer.
public enum HTTPResponseEncoder {
    /// The status line and headers, with `Content-Length` and, when closing, `Connection: close`.
    /// A streamed response has no length: its body ends when the connection closes.
    /// `date` is an IMF-fixdate string (cached by the server, one per second).
    public static func head(_ response: HTTPResponse, close: Bool, date: [UInt8]?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out += statusLine(response.status)
        if let date {
            out += dateName
            out += date
            out += crlf
        }
        for header in response.headers {
            out += header.name.utf8
            out += separator
            out += header.value.utf8
            out += crlf
        }
        if response.stream == nil {
            out += lengthName
            appendDecimal(response.body.count, to: &out)
            out += crlf
        }
        if close || response.stream != nil { out += closeLine }
        out += crlf
        return out
    }

    private static let crlf: [UInt8] = [13, 10]
    private static let separator = Array(": ".utf8)
    private static let dateName = Array("Date: ".utf8)
    private static let lengthName = Array("Content-Length: ".utf8)
    private static let closeLine = Array("Connection: close\r\n".utf8)
    private static let common: [Int: [UInt8]] = Dictionary(
        uniqueKeysWithValues: [
            200, 201, 204, 400, 401, 403, 404, 405, 409, 412,
            413, 415, 422, 428, 431, 500, 503,
        ].map {
            ($0, Array("HTTP/1.1 \($0) \(HTTPStatus.reason($0))\r\n".utf8))
        })

    static func statusLine(_ status: Int) -> [UInt8] {
        common[status] ?? Array("HTTP/1.1 \(status) \(HTTPStatus.reason(status))\r\n".utf8)
    }

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        guard value > 0 else {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits: [UInt8] = []
        var rest = value
        while rest > 0 {
            digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        }
        out += digits.reversed()
    }
}
