import APITypes
import EventStore
import HTTPServer
import MemoryModel

extension APIRouter {
    /// The agent itself: the status page and its sign-in, health, metrics and host facts.
    static func parsePage(_ route: APIRoute, _ parts: Parts) throws(APIError) -> AgentAction {
        switch (route, parts.method) {
        case (.statusPage, _): return .statusPage
        case (.login, "GET"): return .login(token: nil)
        case (.login, _): return .login(token: try formField("token", parts.request))
        case (.logout, _): return .logout
        case (.healthz, _): return .health
        case (.metrics, _): return .metrics
        case (.host, _): return .host
        default: throw .notFound("no such endpoint: \(parts.request.path)")
        }
    }
}
