import HTTPServer

/// Every error the API returns, with its status and machine-readable code.
/// `response` is the one place errors become HTTP.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var headers: [String: String] = [:]

    public init(_ status: Int, _ code: String, _ message: String, headers: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status) \(code): \(message)" }

    public var response: HTTPResponse {
        .error(
            status, code: code, message: message, headers: headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        )
    }

    static func notFound(_ what: String) -> APIError { APIError(404, "not_found", what) }
    static func badParameter(_ name: String, _ message: String) -> APIError {
        APIError(400, "invalid_parameter", "query parameter \(name): \(message)")
    }
    static func invalidField(_ field: String, _ message: String) -> APIError {
        APIError(422, "invalid_field", "\(field): \(message)")
    }
}
