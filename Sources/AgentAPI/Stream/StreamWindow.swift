import EventStore

/// The most recent stream events, shared by every reader that has caught up. Pure.
///
/// Holds every final event with an id in (`floor`, `head`], each rendered once as
/// its SSE frame: a reader's share is a run of those bytes, not a rendering per
/// reader. A reader whose cursor is at or past `floor` is served from here; one
/// further back reads the store.
public struct StreamWindow: Sendable {
    public let capacity: Int
    private var events: [StreamEvent] = []
    /// Every event's SSE frame, back to back; event `i`'s ends at `ends[i]`.
    private var frames: [UInt8] = []
    private var ends: [Int] = []
    /// Events before `start` are evicted (dropped in bulk, not one at a time).
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
        for event in page {
            SSEFrame.append(id: event.id, type: event.kind, data: event.json, to: &frames)
            ends.append(frames.count)
        }
        events += page
        head = max(head, last.id)
        if count > capacity {
            start = events.count - capacity
            floor = events[start - 1].id
            if start >= capacity {
                let cut = ends[start - 1]
                frames.removeFirst(cut)
                ends.removeFirst(start)
                for index in ends.indices { ends[index] -= cut }
                events.removeFirst(start)
                start = 0
            }
        }
    }

    /// Up to `limit` events after `cursor` (which must be at or past `floor`).
    public func events(after cursor: Int64, limit: Int) -> [StreamEvent] {
        let low = firstIndex(after: cursor)
        return Array(events[low..<min(low + limit, events.count)])
    }

    /// The frames of the events among the next `limit` after `cursor` that `filter` passes,
    /// as one byte run, and the id of the last event looked at; nil when there is none.
    public func frames(after cursor: Int64, limit: Int, filter: StreamFilter) -> (bytes: [UInt8], through: Int64)? {
        let low = firstIndex(after: cursor), high = min(low + max(limit, 1), events.count)
        guard low < high else { return nil }
        if filter.passesEverything { return (Array(frames[frameStart(low)..<ends[high - 1]]), events[high - 1].id) }
        var bytes: [UInt8] = []
        var index = low
        while index < high {
            guard filter.matches(events[index]) else {
                index += 1
                continue
            }
            // A run of passing events is one copy.
            var end = index + 1
            while end < high && filter.matches(events[end]) { end += 1 }
            bytes += frames[frameStart(index)..<ends[end - 1]]
            index = end
        }
        return (bytes, events[high - 1].id)
    }

    private func frameStart(_ index: Int) -> Int { index == 0 ? 0 : ends[index - 1] }

    private func firstIndex(after cursor: Int64) -> Int {
        var low = start, high = events.count
        while low < high {
            let middle = (low + high) / 2
            if events[middle].id <= cursor { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
