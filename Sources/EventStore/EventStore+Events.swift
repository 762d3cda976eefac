import Foundation
import Logging
import MemoryModel
import Platform
import SQLite
import Synchronization

/// Faults and conversions: the `EventSink` the conversion engine records into.
extension EventStore {
    /// Schema 1-5's fault row: only replayed from rings an older agent left.
    static let insertFault = """
        INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let insertFaultWithAccess = """
        INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let insertConversion = """
        INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision,
                                 reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    /// A VM process's conversion: also its own number (`vm_seq`), which its completion names.
    static let insertVMConversion = """
        INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision,
                                 reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages, vm_seq)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    // The same inserts with the row's audit-chain value, when the writer links it as it is inserted (ChainLinker.linkInline).
    static let insertFaultChained = """
        INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source, access, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let insertConversionChained = """
        INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision,
                                 reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages, chain)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let insertVMConversionChained = """
        INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision,
                                 reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages, vm_seq, chain)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let finishConversion = """
        UPDATE conversions SET decision = ?, reason = coalesce(?, reason), completed_ns = ?, discarded_bytes = ?, guest_result = ?
        WHERE event_id = ?
        """

    func receipt(_ sequence: UInt64, durable: Bool) -> EventReceipt {
        durable ? .done : receipt(sequence)
    }

    public func record(fault: MemoryFaultRecord) -> EventReceipt {
        let (_, sequence, durable) = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            ((), [Self.faultWrite(fault, id: nextEventID())])
        }
        return receipt(sequence, durable: durable)
    }

    func insert(_ conversion: ConversionRecord) -> (ConversionTicket, sequence: UInt64, durable: Bool) {
        writer.enqueueDurably { () -> (ConversionTicket, [EventWriter.Write]) in
            let id = nextEventID()
            return (ConversionTicket(id: UInt64(id)), [Self.conversionWrite(conversion, id: id)])
        }
    }

    /// The insert of a conversion under event id `id`; with `vmSequence`, a VM process's.
    static func conversionWrite(_ conversion: ConversionRecord, id: Int64, vmSequence: UInt64? = nil)
        -> EventWriter.Write
    {
        var values: [SQLValue] = [
            .integer(id), .integer(conversion.vmID), .integer(Int64(conversion.vcpu)),
            .unsigned(conversion.requestedNanos), .optional(conversion.completedNanos), .unsigned(conversion.gpa),
            .unsigned(conversion.size), .text(conversion.direction.rawValue), .text(conversion.trigger.rawValue),
            .text(conversion.decision.rawValue), .text(conversion.reason), .text(conversion.policyVersion),
            .text(conversion.source.rawValue), .unsigned(conversion.changedBytes), .unsigned(conversion.discardedBytes),
            .integer(conversion.guestResult),
            conversion.requestedPages.map { .integer(Int64(min($0, UInt64(Int64.max)))) } ?? .null,
        ]
        guard let vmSequence else { return EventWriter.Write(.insertConversion, values: values) }
        values.append(.unsigned(vmSequence))
        return EventWriter.Write(.insertVMConversion, values: values)
    }

    static func faultWrite(_ fault: MemoryFaultRecord, id: Int64) -> EventWriter.Write {
        EventWriter.Write(
            .insertFaultWithAccess,
            values: [
                .integer(id), .integer(fault.vmID), .integer(Int64(fault.vcpu)), .unsigned(fault.timeNanos),
                .unsigned(fault.gpa), .unsigned(fault.size), .unsigned(fault.flags), .text(fault.source.rawValue),
                fault.access.map { .text($0.rawValue) } ?? .null,
            ])
    }

    static func finishWrite(
        eventID: Int64, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
        discardedBytes: UInt64, guestResult: Int64
    ) -> EventWriter.Write {
        EventWriter.Write(
            .finishConversion,
            values: [
                .text(decision.rawValue), reason.map { .text($0) } ?? .null, .unsigned(completedNanos),
                .unsigned(discardedBytes), .integer(guestResult), .integer(eventID),
            ])
    }

    static func aggregateWrite(_ aggregate: EventAggregate) -> EventWriter.Write {
        EventWriter.Write(
            sql: """
                INSERT INTO event_aggregates (vm_id, second, kind, events) VALUES (?, ?, ?, ?)
                ON CONFLICT (vm_id, second, kind) DO UPDATE SET events = events + excluded.events
                """,
            values: [
                .integer(aggregate.vmID), .unsigned(aggregate.second), .text(aggregate.kind.rawValue),
                .unsigned(aggregate.events),
            ])
    }

    public func record(conversion: ConversionRecord) -> EventReceipt {
        let (_, sequence, durable) = insert(conversion)
        return receipt(sequence, durable: durable)
    }

    public func begin(conversion: ConversionRecord) -> PendingConversion {
        let (ticket, sequence, durable) = insert(conversion)
        return PendingConversion(ticket: ticket, receipt: receipt(sequence, durable: durable))
    }

    public func record(aggregate: EventAggregate) {
        _ = writer.enqueue { () -> (Void, [EventWriter.Write]) in
            ((), [Self.aggregateWrite(aggregate)])
        }
    }

    public func finish(
        _ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
        discardedBytes: UInt64, guestResult: Int64
    ) {
        _ = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            (
                (),
                [
                    Self.finishWrite(
                        eventID: Int64(ticket.id), decision: decision, reason: reason, completedNanos: completedNanos,
                        discardedBytes: discardedBytes, guestResult: guestResult)
                ]
            )
        }
    }
}
