import Synchronization

/// Keeps recent events in memory, in order. Durable at once; for tests and
/// `--no-record` runs. Bounded: beyond `capacity` events the oldest quarter goes
/// (counted in `droppedEvents`), so a VM running for months cannot exhaust memory.
public final class InMemoryEventSink: EventSink {
    public enum Event: Sendable, Equatable {
        case fault(MemoryFaultRecord)
        case conversion(ConversionRecord)
    }

    private struct State {
        var events: [Event] = []
        /// Absolute index of `events[0]`: events before it were dropped.
        var firstIndex = 0
        /// Pending conversions by ticket: their absolute index.
        var pending: [UInt64: Int] = [:]
        var nextTicket: UInt64 = 1
        var aggregates: [EventAggregate] = []
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 100_000) {
        self.capacity = max(capacity, 4)
    }

    public var events: [Event] { state.withLock { $0.events } }
    public var faults: [MemoryFaultRecord] { events.compactMap { if case .fault(let f) = $0 { f } else { nil } } }
    public var conversions: [ConversionRecord] {
        events.compactMap { if case .conversion(let c) = $0 { c } else { nil } }
    }
    /// Counts of events over a VM's budget, merged by VM, second and kind.
    public var aggregates: [EventAggregate] { state.withLock { $0.aggregates } }
    /// Events let go to stay within `capacity`.
    public var droppedEvents: Int { state.withLock { $0.firstIndex } }

    private func append(_ event: Event, to state: inout State) -> Int {
        if state.events.count >= capacity {
            let drop = capacity / 4
            state.events.removeFirst(drop)
            state.firstIndex += drop
        }
        state.events.append(event)
        return state.firstIndex + state.events.count - 1
    }

    public func record(fault: MemoryFaultRecord) -> EventReceipt {
        state.withLock { _ = append(.fault(fault), to: &$0) }
        return .done
    }

    public func record(conversion: ConversionRecord) -> EventReceipt {
        state.withLock { _ = append(.conversion(conversion), to: &$0) }
        return .done
    }

    public func begin(conversion: ConversionRecord) -> PendingConversion {
        state.withLock { state in
            let ticket = state.nextTicket
            state.nextTicket += 1
            state.pending[ticket] = append(.conversion(conversion), to: &state)
            return PendingConversion(ticket: ConversionTicket(id: ticket), receipt: .done)
        }
    }

    public func finish(
        _ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
        discardedBytes: UInt64, guestResult: Int64
    ) {
        state.withLock { state in
            guard let absolute = state.pending.removeValue(forKey: ticket.id) else { return }
            let index = absolute - state.firstIndex
            guard index >= 0, index < state.events.count, case .conversion(var record) = state.events[index] else {
                return
            }
            record.decision = decision
            if let reason { record.reason = reason }
            record.completedNanos = completedNanos
            record.discardedBytes = discardedBytes
            record.guestResult = guestResult
            state.events[index] = .conversion(record)
        }
    }

    public func record(aggregate: EventAggregate) {
        state.withLock { state in
            if let index = state.aggregates.lastIndex(where: {
                $0.vmID == aggregate.vmID && $0.second == aggregate.second && $0.kind == aggregate.kind
            }) {
                state.aggregates[index].events += aggregate.events
            } else {
                if state.aggregates.count >= capacity { state.aggregates.removeFirst(capacity / 4) }
                state.aggregates.append(aggregate)
            }
        }
    }
}
