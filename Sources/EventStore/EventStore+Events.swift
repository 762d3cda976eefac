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
    static let finishConversion = """
        UPDATE conversions SET decision = ?, reason = coalesce(?, reason), completed_ns = ?, discarded_bytes = ?, guest_result = ?
        WHERE event_id = ?
        """

    func receipt(_ sequence: UInt64, durable: Bool) -> EventReceipt {
        durable ? .done : receipt(sequence)
    }

    public func record(fault: MemoryFaultRecord) -> EventReceipt {
        let (_, sequence, durable) = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(.insertFaultWithAccess, values: [
                .integer(nextEventID()), .integer(fault.vmID), .integer(Int64(fault.vcpu)), .unsigned(fault.timeNanos),
                .unsigned(fault.gpa), .unsigned(fault.size), .unsigned(fault.flags), .text(fault.source.rawValue),
                fault.access.map { .text($0.rawValue) } ?? .null,
            ])])
        }
        return receipt(sequence, durable: durable)
    }

    func insert(_ conversion: ConversionRecord) -> (ConversionTicket, sequence: UInt64, durable: Bool) {
        writer.enqueueDurably { () -> (ConversionTicket, [EventWriter.Write]) in
            let id = nextEventID()
            return (ConversionTicket(id: UInt64(id)), [EventWriter.Write(.insertConversion, values: [
                .integer(id), .integer(conversion.vmID), .integer(Int64(conversion.vcpu)),
                .unsigned(conversion.requestedNanos), .optional(conversion.completedNanos), .unsigned(conversion.gpa),
                .unsigned(conversion.size), .text(conversion.direction.rawValue), .text(conversion.trigger.rawValue),
                .text(conversion.decision.rawValue), .text(conversion.reason), .text(conversion.policyVersion),
                .text(conversion.source.rawValue), .unsigned(conversion.changedBytes), .unsigned(conversion.discardedBytes),
                .integer(conversion.guestResult),
                conversion.requestedPages.map { .integer(Int64(min($0, UInt64(Int64.max)))) } ?? .null,
            ])])
        }
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
            ((), [EventWriter.Write(sql: """
                INSERT INTO event_aggregates (vm_id, second, kind, events) VALUES (?, ?, ?, ?)
                ON CONFLICT (vm_id, second, kind) DO UPDATE SET events = events + excluded.events
                """, values: [.integer(aggregate.vmID), .unsigned(aggregate.second), .text(aggregate.kind.rawValue),
                              .unsigned(aggregate.events)])])
        }
    }

    public func finish(_ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
                       discardedBytes: UInt64, guestResult: Int64) {
        _ = writer.enqueueDurably { () -> (Void, [EventWriter.Write]) in
            ((), [EventWriter.Write(.finishConversion, values: [
                .text(decision.rawValue), reason.map { .text($0) } ?? .null, .unsigned(completedNanos),
                .unsigned(discardedBytes), .integer(guestResult), .integer(Int64(ticket.id)),
            ])])
        }
    }
}
