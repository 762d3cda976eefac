import APITypes
import EventStore
import HTTPServer
import MemoryModel

extension APIRouter {
    /// The records: faults, conversions, events and the live stream.
    static func parseEvents(_ route: APIRoute, _ parts: Parts) throws(APIError) -> AgentAction {
        switch (route, parts.method) {
        case (.faults, _): return .faults(try filter(parts.query, conversions: false))
        case (.conversions, _): return .conversions(try filter(parts.query, conversions: true))
        case (.events, _):
            if let kinds = parts.query["kinds"] {
                guard kinds == "all" else {
                    throw .badParameter("kinds", "takes all (every kind of event, as the stream carries them)")
                }
                guard parts.query["from"] == nil else { throw .badParameter("from", "does not go with kinds=all") }
                return .allEvents(
                    after: try parts.query.integer("after", in: 0...Int64.max, default: 0),
                    limit: Int(
                        try parts.query.integer("limit", in: PageLimit.queryRange, default: Int64(PageLimit.default))))
            }
            return .events(
                after: try parts.query.integer("after", in: 0...Int64.max, default: 0),
                limit: Int(
                    try parts.query.integer("limit", in: PageLimit.queryRange, default: Int64(PageLimit.default))),
                fromEnd: try parts.query.choice("from", of: ["start", "end"]) == "end")
        case (.eventStream, _):
            // A reconnecting EventSource sends Last-Event-ID; it wins over the URL it reconnects to.
            var after = try parts.query.optionalInteger("after", in: 0...Int64.max)
            if let last = parts.request.header("Last-Event-ID") {
                guard let id = Int64(last.trimmingCharacters(in: .whitespaces)), id >= 0 else {
                    throw APIError(
                        400, "invalid_last_event_id",
                        "Last-Event-ID must be an event id (a non-negative integer), not \(last)")
                }
                after = id
            }
            var filter = StreamFilter(vm: try parts.query.optionalInteger("vm", in: 1...Int64.max))
            if let kinds = parts.query["kind"] {
                let named = Set(kinds.split(separator: ",").map(String.init))
                guard !named.isEmpty, named.isSubset(of: StreamFilter.kinds) else {
                    throw .badParameter(
                        "kind", "takes a comma-separated list of \(StreamFilter.kinds.joined(separator: ", "))")
                }
                filter.kinds = named
            }
            return .eventStream(after: after, filter: filter)
        default: throw .notFound("no such endpoint: \(parts.request.path)")
        }
    }
}
