import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import MemoryModel
import Pictures
import Platform

extension AgentAPI {
    /// The conversion policy: read, put, validate, replay, and its history and documents.
    func performPolicy(
        _ action: AgentAction, request: HTTPRequest, principal: Principal?,
        context: RequestContext
    ) throws(APIError) -> HTTPResponse {
        switch action {
        case .getPolicy:
            let current = host.policies.policy
            return HTTPResponse(
                status: 200, contentType: "application/json", body: current.document,
                headers: [("ETag", ETag.quoted(current.version))])
        case .putPolicy(let document, let ifMatch, let channel):
            let change: PolicyChange
            do throws(PolicyChange.ChannelError) {
                change = try .api(
                    principal: Self.client(principal, context), channel: channel,
                    idempotencyKey: request.header("Idempotency-Key"))
            } catch {
                throw APIError(400, "invalid_change_channel", error.description)
            }
            return try putPolicy(document, ifMatch: ifMatch, change: change)
        case .validatePolicy(let document):
            return try json(validate(document))
        case .replayPolicy(let document, let window, let samples):
            return try json(try replay(document, window: window, samples: samples))
        case .policyDocument(let version):
            let document = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.policyDocument(version: version)
            }
            guard let document else { throw .notFound("this agent never applied policy version \(version)") }
            return HTTPResponse(
                status: 200, contentType: "application/json", body: document,
                headers: [("ETag", ETag.quoted(version)), ("Cache-Control", "max-age=31536000, immutable")])
        case .policyHistory(let limit):
            let rows = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.policyHistory(limit: limit)
            }
            return try json(PolicyHistory(entries: rows))
        default:
            throw Self.misrouted(action)
        }
    }
}
