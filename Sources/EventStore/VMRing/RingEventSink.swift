import MemoryModel
import Synchronization

/// The `EventSink` of a VM process: every record goes into the VM's ring, which
/// makes it durable at once. A full ring (an agent that is behind, or absent) makes
/// the recording vCPU wait for room: its guest is never answered before its record
/// is in the ring. The waits are counted in the ring's header.
public final class RingEventSink: EventSink {
    public let ring: VMRing
    private let nextSequence = Atomic<UInt64>(1)
    /// Set when the VM is ending: a vCPU waiting for room gives up (its conversion is not answered).
    private let abandoned = Atomic<Bool>(false)

    public init(ring: VMRing) { self.ring = ring }

    /// Stops every wait for room (the VM is being stopped while its ring is full).
    public func abandonWaits() { abandoned.store(true, ordering: .releasing) }

    private func append(_ record: VMRecord) -> EventReceipt {
        let payload = record.encoded()
        if ring.append(payload, shouldGiveUp: { abandoned.load(ordering: .acquiring) }) { return .done }
        let failure = RecordingFailure(
            operation: "ring",
            message: payload.count > ring.capacity / 2
                ? "a record of \(payload.count) bytes does not fit the VM's ring"
                : "the VM ended while its ring was full (no agent drained it)")
        return EventReceipt { failure }
    }

    public func record(fault: MemoryFaultRecord) -> EventReceipt { append(.fault(fault)) }

    public func record(conversion: ConversionRecord) -> EventReceipt { append(.conversion(conversion)) }

    public func begin(conversion: ConversionRecord) -> PendingConversion {
        let sequence = nextSequence.wrappingAdd(1, ordering: .relaxed).oldValue
        return PendingConversion(
            ticket: ConversionTicket(id: sequence), receipt: append(.begin(sequence: sequence, conversion)))
    }

    public func finish(
        _ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
        discardedBytes: UInt64, guestResult: Int64
    ) {
        _ = append(
            .finish(
                sequence: ticket.id, decision: decision, reason: reason, completedNanos: completedNanos,
                discardedBytes: discardedBytes, guestResult: guestResult))
    }

    public func record(aggregate: EventAggregate) { _ = append(.aggregate(aggregate)) }

    /// A start, pause or resume, in order with the VM's other records.
    public func recordLifecycle(_ what: EventStore.VMEventKind, atNanos time: UInt64) {
        _ = append(.lifecycle(what, timeNanos: time))
    }

    /// The VM's last record; waits for room like any other.
    public func recordEnd(_ ending: VMEnding) -> Bool {
        ring.append(VMRecord.ended(ending).encoded())
    }
}
