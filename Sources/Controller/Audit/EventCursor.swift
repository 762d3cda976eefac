import APITypes

/// One host's position in its event stream, advanced page by page. An agent is
/// not trusted: a page must move strictly forward (ids above the cursor, in
/// increasing order, `next_after` not behind them), and a host may hand out at
/// most `maxRows` events in one run. Otherwise that host fails, with a reason;
/// the others go on. Pure.
public struct EventCursor: Sendable, Equatable {
    public private(set) var position: Int64
    /// Events taken so far in this run.
    public private(set) var rows = 0
    public let maxRows: Int

    public init(position: Int64, maxRows: Int) {
        self.position = position
        self.maxRows = maxRows
    }

    public enum Step: Sendable, Equatable {
        /// These events are new; the page was full, so ask again.
        case more([EventEntry])
        /// These events are new; the host has no more for now.
        case done([EventEntry])
        /// The host broke a promise (or hit `maxRows`): keep `events` (valid, new) and stop asking it.
        case failed(String, events: [EventEntry])
    }

    public mutating func advance(with page: EventPage, pageSize: Int) -> Step {
        var last = position
        for event in page.events {
            guard event.eventId > last else {
                let problem = event.eventId <= position
                    ? "the host sent event \(event.eventId) again (its cursor was already \(position)); it is not advancing"
                    : "the host sent event ids out of order (\(event.eventId) after \(last))"
                return .failed(problem, events: [])
            }
            last = event.eventId
        }
        guard page.nextAfter >= last else {
            return .failed("the host's next_after \(page.nextAfter) is behind the events it sent (up to \(last))", events: [])
        }
        guard page.events.count <= pageSize else {
            return .failed("the host sent \(page.events.count) events for a page of \(pageSize)", events: [])
        }
        let room = max(maxRows - rows, 0)
        if page.events.count > room {
            let kept = Array(page.events.prefix(room))
            rows += kept.count
            position = kept.last?.eventId ?? position
            return .failed("more than \(maxRows) events in one run (--max-rows); run again to continue from event \(position)", events: kept)
        }
        rows += page.events.count
        position = page.nextAfter
        return page.events.count == pageSize && !page.events.isEmpty ? .more(page.events) : .done(page.events)
    }
}
