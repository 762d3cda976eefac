/// What beyond a VM's recording budget is counted instead of recorded one row each.
public enum AggregateKind: String, Sendable, Codable, CaseIterable {
    case invalid
    case denied
    case fault
}

/// Events of one kind, one VM and one second that went over the budget.
public struct EventAggregate: Sendable, Equatable {
    public var vmID: Int64
    /// Seconds since the Unix epoch.
    public var second: UInt64
    public var kind: AggregateKind
    public var events: UInt64

    public init(vmID: Int64, second: UInt64, kind: AggregateKind, events: UInt64) {
        self.vmID = vmID
        self.second = second
        self.kind = kind
        self.events = events
    }
}

/// A per-VM budget of rows per second for each kind a guest can produce at will
/// (invalid requests, denied requests, memory faults). Within it every event gets
/// its row; beyond it events are counted, and each full second's count becomes one
/// aggregate row. So a hostile guest grows the record by a fixed bound per second.
/// Pure: the caller supplies the time.
public struct RecordingBudget: Sendable {
    public let rowsPerSecond: UInt64
    private var buckets: [AggregateKind: RateLimiter] = [:]
    private var open: [AggregateKind: (second: UInt64, events: UInt64)] = [:]

    public init(rowsPerSecond: UInt64) {
        self.rowsPerSecond = rowsPerSecond
    }

    public enum Admission: Equatable, Sendable {
        /// Record the event's own row.
        case record
        /// Count it; `flushed` is a finished second of the same kind to write now, if any.
        case counted(flushed: EventAggregate?)
    }

    /// Decides for one event of `kind` at `nanos` (wall clock, for the second) and
    /// `monotonicNanos` (for the rate).
    public mutating func admit(_ kind: AggregateKind, vmID: Int64, wallNanos: UInt64, monotonicNanos: UInt64)
        -> Admission
    {
        var bucket = buckets[kind] ?? RateLimiter(perSecond: max(rowsPerSecond, 1))
        let allowed = rowsPerSecond > 0 && bucket.allow(atNanos: monotonicNanos)
        buckets[kind] = bucket
        if allowed { return .record }
        let second = wallNanos / 1_000_000_000
        if let current = open[kind], current.second == second {
            open[kind] = (second, current.events + 1)
            return .counted(flushed: nil)
        }
        let finished = open[kind].map { EventAggregate(vmID: vmID, second: $0.second, kind: kind, events: $0.events) }
        open[kind] = (second, 1)
        return .counted(flushed: finished)
    }

    /// Every count not yet written (at the VM's end).
    public mutating func drain(vmID: Int64) -> [EventAggregate] {
        defer { open.removeAll() }
        return AggregateKind.allCases.compactMap { kind in
            open[kind].map { EventAggregate(vmID: vmID, second: $0.second, kind: kind, events: $0.events) }
        }
    }
}
