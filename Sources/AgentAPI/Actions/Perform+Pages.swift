import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import MemoryModel
import Pictures
import Platform

extension AgentAPI {
    /// The agent itself: health, metrics, host facts, and the status page with its sign-in.
    func performPage(
        _ action: AgentAction, request: HTTPRequest, principal: Principal?,
        context: RequestContext
    ) throws(APIError) -> HTTPResponse {
        switch action {
        case .health:
            return HTTPResponse(status: 200, contentType: "application/json", body: Self.healthBody)
        case .metrics:
            return HTTPResponse(
                status: 200, contentType: "text/plain; version=0.0.4", body: Array(renderMetrics().utf8))
        case .host:
            return try json(snapshot.info(vms: vmCounts(), policy: host.policies.policy))
        case .statusPage:
            return statusPage(request, context: context)
        case .login(let token):
            return login(token: token, context: context)
        case .logout:
            return logout(request)
        default:
            throw Self.misrouted(action)
        }
    }
}
