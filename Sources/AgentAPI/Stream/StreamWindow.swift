import EventStore

/// The most recent stream events, shared by every reader that has caught up. Pure.
///
/// Holds every final event with an id in (`floor`, `head`]: a reader whose cursor
/// is at or past `floor` is served from here; one further back reads the store.
public struct StreamWindow: Sendable {
    public let capacity: Int
    private var events: [StreamEvent] = []
    /// Events before `start` in `events` are evicted (dropped in bulk, not one at a time).
    private var start = 0
    public private(set) var floor: Int64
    public private(set) var head: Int64

    public init(capacity: Int, head: Int64 = 0) {
        self.capacity = max(capacity, 1)
        floor = head
        self.head = head
    }

    public var count: Int { events.count - start }

    /// Events read after `head`, in id order.
    public mutating func append(_ page: [StreamEvent]) {
        guard let last = page.last else { return }
        events += page
        head = max(head, last.id)
        if count > capacity {
            start = events.count - capacity
            floor = events[start - 1].id
            if start >= capacity {
                events.removeFirst(start)
                start = 0
            }
        }
    }

    /// Up to `limit` events after `cursor` (which must be at or past `floor`).
    public func events(after cursor: Int64, limit: Int) -> [StreamEvent] {
        var low = start, high = events.count
        while low < high {
            let middle = (low + high) / 2
            if events[middle].id <= cursor { low = middle + 1 } else { high = middle }
        }
        return Array(events[low..<min(low + limit, events.count)])
    }
}
