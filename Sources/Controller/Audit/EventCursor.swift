import APITypes

/// One host's position in an id-ordered stream (its events, its API requests),
/// advanced page by page. An agent is
/// not trusted: a page must move strictly forward (ids above the cursor, in
/// increasing order, `next_after` not behind them), and a host may hand out at
/// most `maxRows` events in one run. Otherwise that host fails, with a reason;
/// the others go on. Pure.
public struct EventCursor: Sendable, Equatable {
    public private(set) var position: Int64
    /// Events taken so far in this run.
    public private(set) var rows = 0
    public let maxRows: Int

    public init(position: Int64, maxRows: Int, rows: Int = 0) {
        self.position = position
        self.maxRows = maxRows
        self.rows = rows
    }

    public enum Step<Item: Sendable>: Sendable {
        /// These items are new; the page was full, so ask again.
        case more([Item])
        /// These items are new; the host has no more for now.
        case done([Item])
        /// The host broke a promise (or hit `maxRows`): keep `events` (valid, new) and stop asking it.
        case failed(String, events: [Item])
    }

    public mutating func advance(with page: EventPage, pageSize: Int) -> Step<EventEntry> {
        advance(page.events, id: \.eventId, nextAfter: page.nextAfter, pageSize: pageSize, noun: "event")
    }

    /// One page of any id-ordered stream: `items` in order, `nextAfter` where the next page starts.
    /// `noun` names the items in the reasons ("event", "request").
    public mutating func advance<Item>(
        _ items: [Item], id: (Item) -> Int64, nextAfter: Int64, pageSize: Int,
        noun: String
    ) -> Step<Item> {
        var last = position
        for item in items {
            let itemID = id(item)
            guard itemID > last else {
                let problem =
                    itemID <= position
                    ? "the host sent \(noun) \(itemID) again (its cursor was already \(position)); it is not advancing"
                    : "the host sent \(noun) ids out of order (\(itemID) after \(last))"
                return .failed(problem, events: [])
            }
            last = itemID
        }
        guard nextAfter >= last else {
            return .failed(
                "the host's next_after \(nextAfter) is behind the \(noun)s it sent (up to \(last))", events: [])
        }
        guard items.count <= pageSize else {
            return .failed("the host sent \(items.count) \(noun)s for a page of \(pageSize)", events: [])
        }
        let room = max(maxRows - rows, 0)
        if items.count > room {
            let kept = Array(items.prefix(room))
            rows += kept.count
            position = kept.last.map(id) ?? position
            return .failed(
                "more than \(maxRows) \(noun)s in one run (--max-rows); run again to continue from \(noun) \(position)",
                events: kept)
        }
        rows += items.count
        position = nextAfter
        return items.count == pageSize && !items.isEmpty ? .more(items) : .done(items)
    }
}

extension EventCursor.Step: Equatable where Item: Equatable {}
