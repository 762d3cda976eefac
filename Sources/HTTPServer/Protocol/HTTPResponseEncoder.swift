/// Serializes a response head. Pure; the body is sent as a second buffer.
public enum HTTPResponseEncoder {
    /// The status line and headers, with `Content-Length` and, when closing, `Connection: close`.
    /// `date` is an IMF-fixdate string (cached by the server, one per second).
    public static func head(_ response: HTTPResponse, close: Bool, date: String?) -> [UInt8] {
        var text = "HTTP/1.1 \(response.status) \(HTTPStatus.reason(response.status))\r\n"
        text.reserveCapacity(128 + response.headers.count * 32)
        if let date { text += "Date: \(date)\r\n" }
        for header in response.headers { text += "\(header.name): \(header.value)\r\n" }
        text += "Content-Length: \(response.body.count)\r\n"
        if close { text += "Connection: close\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }
}
