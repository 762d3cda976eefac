import APITypes
import EventStore
import HTTPServer
import MemoryModel

extension APIRouter {
    /// The conversion policy and its history.
    static func parsePolicy(_ route: APIRoute, _ parts: Parts) throws(APIError) -> AgentAction {
        switch (route, parts.method) {
        case (.policy, "GET"): return .getPolicy
        case (.policy, _):
            guard let tag = parts.request.header("If-Match") else {
                throw APIError(
                    428, "precondition_required", "PUT /v1/policy needs If-Match with the ETag of GET /v1/policy")
            }
            let channel = parts.request.header("MemGate-Change")
            if let channel {
                do throws(PolicyChange.ChannelError) {
                    _ = try PolicyChange.channel(parsing: channel)
                } catch {
                    throw APIError(400, "invalid_change_channel", error.description)
                }
            }
            return .putPolicy(document: try jsonBody(parts.request, parsed: false), ifMatch: tag, channel: channel)
        case (.policyValidate, _): return .validatePolicy(document: try jsonBody(parts.request, parsed: false))
        case (.policyReplay, _):
            var window = EventQueries.ReplayWindow(vm: try parts.query.optionalInteger("vm", in: 1...Int64.max))
            window.since = try parts.query.optionalInteger("since", in: 0...Int64.max).map { UInt64($0) }
            window.until = try parts.query.optionalInteger("until", in: 1...Int64.max).map { UInt64($0) }
            if let since = window.since, let until = window.until, until <= since {
                throw APIError(422, "invalid_range", "until must be above since")
            }
            return .replayPolicy(
                document: try jsonBody(parts.request, parsed: false), window: window,
                samples: Int(try parts.query.integer("samples", in: 0...1000, default: 20)))
        case (.policyHistory, _):
            return .policyHistory(
                limit: Int(
                    try parts.query.integer("limit", in: PageLimit.queryRange, default: Int64(PageLimit.default))))
        case (.policyDocument, _):
            let version = String(parts.request.path.split(separator: "/").last ?? "")
            guard version.count == 64,
                version.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            else {
                throw .notFound("policy versions are 64 lower-case hex digits; \(parts.request.path) names none")
            }
            return .policyDocument(version: version)
        default: throw .notFound("no such endpoint: \(parts.request.path)")
        }
    }
}
