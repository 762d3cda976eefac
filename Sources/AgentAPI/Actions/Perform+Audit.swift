import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import MemoryModel
import Pictures
import Platform

extension AgentAPI {
    /// The audit: the chains' heads and the admitted API writes.
    func performAudit(
        _ action: AgentAction, request: HTTPRequest, principal: Principal?,
        context: RequestContext
    ) throws(APIError) -> HTTPResponse {
        switch action {
        case .auditHead:
            return try json(try read { (queries: EventQueries) throws(EventStoreError) in try queries.auditHead() })
        case .auditRequests(let after, let limit):
            return try json(
                try read { (queries: EventQueries) throws(EventStoreError) in
                    try queries.apiRequests(after: after, limit: limit)
                })
        default:
            throw Self.misrouted(action)
        }
    }
}
