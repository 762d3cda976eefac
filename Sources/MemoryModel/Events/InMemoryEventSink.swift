import Synchronization

/// Keeps every event in memory, in order. Durable at once; for tests and `--no-record`-style runs.
public final class InMemoryEventSink: EventSink {
    public enum Event: Sendable, Equatable {
        case fault(MemoryFaultRecord)
        case conversion(ConversionRecord)
    }

    private struct State {
        var events: [Event] = []
        var pending: [UInt64: Int] = [:]
        var nextTicket: UInt64 = 1
    }

    private let state = Mutex(State())

    public init() {}

    public var events: [Event] { state.withLock { $0.events } }
    public var faults: [MemoryFaultRecord] { events.compactMap { if case .fault(let f) = $0 { f } else { nil } } }
    public var conversions: [ConversionRecord] { events.compactMap { if case .conversion(let c) = $0 { c } else { nil } } }

    public func record(fault: MemoryFaultRecord) -> EventReceipt {
        state.withLock { $0.events.append(.fault(fault)) }
        return .done
    }

    public func record(conversion: ConversionRecord) -> EventReceipt {
        state.withLock { $0.events.append(.conversion(conversion)) }
        return .done
    }

    public func begin(conversion: ConversionRecord) -> PendingConversion {
        state.withLock { state in
            let ticket = state.nextTicket
            state.nextTicket += 1
            state.pending[ticket] = state.events.count
            state.events.append(.conversion(conversion))
            return PendingConversion(ticket: ConversionTicket(id: ticket), receipt: .done)
        }
    }

    public func finish(_ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
                       discardedBytes: UInt64, guestResult: Int64) {
        state.withLock { state in
            guard let index = state.pending.removeValue(forKey: ticket.id),
                  case .conversion(var record) = state.events[index] else { return }
            record.decision = decision
            if let reason { record.reason = reason }
            record.completedNanos = completedNanos
            record.discardedBytes = discardedBytes
            record.guestResult = guestResult
            state.events[index] = .conversion(record)
        }
    }
}
