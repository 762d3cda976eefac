import APITypes
import EventStore
import Foundation
import HTTPServer
import JSON
import MemoryModel
import Platform

/// Request → `AgentAction`: method, path, query and body checked at the edge. Pure.
public enum APIRouter {
    /// The route a path belongs to (the one table in `APIRoute`) and the VM id in it, if any.
    public static func route(of path: Substring) -> (APIRoute, Int64?) {
        let (route, parameter) = APIRoute.match(path)
        return (route, route.rawValue.contains("{id}") ? vmID(parameter) : nil)
    }

    /// What a resource's parser reads of a request: the request, its query, its method (HEAD as GET) and the VM id in its path.
    struct Parts {
        var request: HTTPRequest
        var query: QueryString
        var method: String
        var id: Int64?

        /// The path's VM id, or 404 when it names none.
        func vm() throws(APIError) -> Int64 {
            guard let id else { throw .notFound("VM ids are positive integers; \(request.path) names none") }
            return id
        }
    }

    /// A VM id is a positive decimal; anything else (`-1`, `abc`, too big) gets a distinct marker.
    private static func vmID(_ text: Substring?) -> Int64? {
        guard let text, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let id = Int64(text), id > 0
        else {
            return nil
        }
        return id
    }

    public static func parse(_ request: HTTPRequest) throws(APIError) -> AgentAction {
        try parse(request, routed: route(of: request.path))
    }

    /// `parse` for a request whose route the caller already computed (once per request).
    public static func parse(_ request: HTTPRequest, routed: (APIRoute, Int64?)) throws(APIError) -> AgentAction {
        let (route, id) = routed
        guard route != .unknown else { throw .notFound("no such endpoint: \(request.path)") }
        let method = request.method == .HEAD ? "GET" : request.method.rawValue
        guard route.methods.contains(method) else {
            throw APIError(
                405, "method_not_allowed", "\(request.method.rawValue) is not allowed on \(route.rawValue)",
                headers: ["Allow": route.methods.joined(separator: ", ")])
        }
        let query = try QueryString(request.query)
        let parts = Parts(request: request, query: query, method: method, id: id)
        switch route.resource {
        case .pages: return try parsePage(route, parts)
        case .vms: return try parseVM(route, parts)
        case .events: return try parseEvents(route, parts)
        case .policy: return try parsePolicy(route, parts)
        case .audit: return try parseAudit(route, parts)
        }
    }

    /// `at=`: an event id (a positive integer) or an RFC 3339 time.
    static func moment(_ query: QueryString) throws(APIError) -> MemoryHistory.Moment? {
        guard let text = query["at"] else { return nil }
        if let id = Int64(text), id >= 1 { return .event(id) }
        if let time = TimeArgument.rfc3339(text) { return .time(time) }
        throw .badParameter(
            "at",
            "takes an event id (a positive integer) or an RFC 3339 time such as 2026-12-06T14:02:17Z, not \(text.prefix(40))"
        )
    }

    static func filter(_ query: QueryString, conversions: Bool) throws(APIError) -> EventFilter {
        var filter = EventFilter()
        filter.vm = try query.optionalInteger("vm", in: 1...Int64.max)
        if !conversions {
            filter.access = try query.choice("access", of: FaultAccess.allCases.map(\.rawValue) + ["unknown"])
        }
        if conversions {
            filter.direction = try query.choice("direction", of: ConversionDirection.self)
            filter.trigger = try query.choice("trigger", of: ConversionTrigger.self)
            filter.decision = try query.choice("decision", of: ConversionDecision.self)
        }
        filter.since = try query.optionalInteger("since", in: 0...Int64.max).map { UInt64($0) }
        filter.until = try query.optionalInteger("until", in: 0...Int64.max).map { UInt64($0) }
        filter.after = try query.integer("cursor", in: 0...Int64.max, default: 0)
        filter.limit = Int(try query.integer("limit", in: PageLimit.queryRange, default: Int64(PageLimit.default)))
        filter.newest = try query.choice("order", of: ["oldest", "newest"]) == "newest"
        return filter
    }

    /// One field of an `application/x-www-form-urlencoded` body (the login form).
    static func formField(_ name: String, _ request: HTTPRequest) throws(APIError) -> String {
        let type = request.header("Content-Type")?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces)
            .lowercased()
        guard type == "application/x-www-form-urlencoded" else {
            throw APIError(
                415, "unsupported_media_type", "send the form as Content-Type: application/x-www-form-urlencoded")
        }
        guard let text = String(validating: request.body, as: UTF8.self) else {
            throw APIError(400, "invalid_form", "the form is not valid UTF-8")
        }
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.first?.replacingOccurrences(of: "+", with: " ").removingPercentEncoding == name else {
                continue
            }
            let raw = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ") : ""
            guard let value = raw.removingPercentEncoding else {
                throw APIError(400, "invalid_form", "\(name) is not valid percent-encoding")
            }
            return value
        }
        throw APIError(422, "missing_field", "the form has no \(name) field")
    }

    /// The body of a JSON request: content type, UTF-8, and a strict JSON object.
    /// - Parameter parsed: false for policy documents, whose parser names a syntax error's field itself.
    static func jsonBody(_ request: HTTPRequest, parsed: Bool = true) throws(APIError) -> [UInt8] {
        // The media type before any parameters, compared without Foundation's string machinery (hot path).
        let type = request.header("Content-Type").map {
            $0.utf8.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != 0x20 && $0 != 0x09 }
        }
        guard let type, type.count == 16, zip(type, "application/json".utf8).allSatisfy({ $0 | 0x20 == $1 | 0x20 })
        else {
            throw APIError(415, "unsupported_media_type", "send the body as Content-Type: application/json")
        }
        guard String(validating: request.body, as: UTF8.self) != nil else {
            throw APIError(400, "invalid_json", "the body is not valid UTF-8")
        }
        guard parsed else { return request.body }
        let document: JSONValue
        do {
            document = try StrictJSON.parse(request.body)
        } catch  where error.kind == .duplicateKey {
            // A repeated key would be read as its last value while a reviewer reads the first.
            throw .invalidField(error.path, "appears twice in one object; give each key once")
        } catch {
            throw APIError(400, "invalid_json", "the body is not strict JSON: \(error)")
        }
        guard case .object = document else { throw APIError(400, "invalid_json", "the body is not a JSON object") }
        return request.body
    }

    static func decodeCreate(_ request: HTTPRequest) throws(APIError) -> VMCreateRequest {
        let body = try jsonBody(request)
        do {
            return try APIJSON.decoder().decode(VMCreateRequest.self, from: Data(body))
        } catch let error as APIError {
            throw error
        } catch let DecodingError.keyNotFound(key, context) {
            throw .invalidField(path(context.codingPath + [key]), "is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw .invalidField(path(context.codingPath), "has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw .invalidField(path(context.codingPath), "must not be null")
        } catch let DecodingError.dataCorrupted(context) {
            throw .invalidField(path(context.codingPath), context.debugDescription)
        } catch {
            throw APIError(400, "invalid_json", "\(error)")
        }
    }

    /// `labels.team` style names for a decoding path, in the wire's snake_case.
    private static func path(_ keys: [any CodingKey]) -> String {
        let names = keys.map { key in
            key.intValue.map { "[\($0)]" }
                ?? key.stringValue.reduce(into: "") { out, char in
                    if char.isUppercase { out += "_" + char.lowercased() } else { out.append(char) }
                }
        }
        return names.isEmpty ? "body" : names.joined(separator: ".")
    }
}
