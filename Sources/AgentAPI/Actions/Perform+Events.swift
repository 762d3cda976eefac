import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import MemoryModel
import Pictures
import Platform

extension AgentAPI {
    /// The records: faults, conversions, every event, and the live stream.
    func performEvents(
        _ action: AgentAction, request: HTTPRequest, principal: Principal?,
        context: RequestContext
    ) throws(APIError) -> HTTPResponse {
        switch action {
        case .faults(let filter):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.faultPageJSON(filter) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page.json)
        case .conversions(let filter):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.conversionPageJSON(filter)
            }
            return HTTPResponse(status: 200, contentType: "application/json", body: page.json)
        case .events(_, _, fromEnd: true):
            let position = try read { (queries: EventQueries) throws(EventStoreError) in try queries.streamHead() }
            return try json(EventPage(events: [], nextAfter: position))
        case .events(let after, let limit, fromEnd: false):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.eventPageJSON(after: after, limit: limit)
            }
            return HTTPResponse(status: 200, contentType: "application/json", body: page)
        case .eventStream(let after, let filter):
            guard let streams else {
                throw APIError(
                    409, "not_recording", "this agent runs with --no-record; there are no stored events to stream")
            }
            var start = after ?? 0
            if after == nil {
                start = try read { (queries: EventQueries) throws(EventStoreError) in try queries.streamHead() }
            }
            let opener = EventStreamHub.Opener(
                name: Self.client(principal, context), isAdmin: principal?.role == .admin)
            switch streams.open(after: start, filter: filter, by: opener) {
            case .success(let response): return response
            case .failure(let refusal):
                throw APIError(503, "too_many_streams", refusal.message, headers: ["Retry-After": "5"])
            }
        case .allEvents(let after, let limit):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in
                try queries.allEventsPageJSON(after: after, limit: limit)
            }
            return HTTPResponse(status: 200, contentType: "application/json", body: page)
        default:
            throw Self.misrouted(action)
        }
    }
}
