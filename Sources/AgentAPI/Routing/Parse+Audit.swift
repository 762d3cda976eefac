import APITypes
import EventStore
import HTTPServer
import MemoryModel

extension APIRouter {
    /// The audit chains' heads and the admitted writes.
    static func parseAudit(_ route: APIRoute, _ parts: Parts) throws(APIError) -> AgentAction {
        switch (route, parts.method) {
        case (.auditHead, _): return .auditHead
        case (.auditRequests, _):
            return .auditRequests(
                after: try parts.query.integer("after", in: 0...Int64.max, default: 0),
                limit: Int(
                    try parts.query.integer("limit", in: PageLimit.queryRange, default: Int64(PageLimit.default))))

        default: throw .notFound("no such endpoint: \(parts.request.path)")
        }
    }
}
