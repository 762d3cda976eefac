/// Where a memory fault came from.
public enum EventSource: String, Sendable, Codable, CaseIterable {
    /// KVM_EXIT_MEMORY_FAULT from KVM itself (attributes backend).
    case kvm
    /// An MMIO exit on the wrong alias, turned into a fault by the agent (alias backend).
    case emulated
}

/// What the faulting access did. KVM reserves bits 0-2 of `memory_fault.flags` for
/// it (copies: MemoryModel stays free of C; pinned by `KVMABIPinTests`); the alias
/// backend knows it from the MMIO exit.
public enum FaultAccess: String, Sendable, Codable, CaseIterable {
    case read, write, exec

    public static let flagRead: UInt64 = 1 << 0
    public static let flagWrite: UInt64 = 1 << 1
    public static let flagExec: UInt64 = 1 << 2

    /// The access KVM's flags name, if any (an instruction fetch is reported as exec, a store as write).
    public init?(flags: UInt64) {
        if flags & Self.flagExec != 0 {
            self = .exec
        } else if flags & Self.flagWrite != 0 {
            self = .write
        } else if flags & Self.flagRead != 0 {
            self = .read
        } else {
            return nil
        }
    }
}

/// A guest memory fault: an access KVM could not satisfy from the page's current backing.
public struct MemoryFaultRecord: Sendable, Equatable {
    /// KVM_MEMORY_EXIT_FLAG_PRIVATE (a copy: MemoryModel stays free of C; pinned by `KVMABIPinTests`).
    public static let flagPrivate: UInt64 = 1 << 3
    /// The VM's id in the store (never reused); the name is for people and policy.
    public var vmID: Int64
    public var vm: String
    public var vcpu: UInt32
    public var timeNanos: UInt64
    /// Page-aligned, without the alias bit.
    public var gpa: UInt64
    public var size: UInt64
    /// KVM_MEMORY_EXIT_FLAG_* bits; PRIVATE (bit 3) when the private address was used.
    public var flags: UInt64
    public var source: EventSource
    /// nil: unknown (KVM did not say).
    public var access: FaultAccess?

    public var isPrivate: Bool { flags & Self.flagPrivate != 0 }

    public init(
        vmID: Int64, vm: String, vcpu: UInt32, timeNanos: UInt64, gpa: UInt64, size: UInt64, flags: UInt64,
        source: EventSource, access: FaultAccess? = nil
    ) {
        self.vmID = vmID
        self.vm = vm
        self.vcpu = vcpu
        self.timeNanos = timeNanos
        self.gpa = gpa
        self.size = size
        self.flags = flags
        self.source = source
        self.access = access
    }
}

/// How a conversion request ended.
public enum ConversionDecision: String, Sendable, Codable, CaseIterable {
    /// Allowed by policy; the conversion is in progress (a crash leaves it so: incomplete).
    case pending
    /// Allowed and carried out.
    case applied
    /// Refused by policy.
    case denied
    /// Refused before policy: the request itself was invalid.
    case invalid
    /// Allowed, but the backend could not carry it out.
    case failed
    /// Was pending when the agent that ran it died: whether it took effect is unknown.
    case incomplete
}

/// One conversion request and what became of it.
public struct ConversionRecord: Sendable, Equatable {
    public var vmID: Int64
    public var vm: String
    public var vcpu: UInt32
    public var requestedNanos: UInt64
    public var completedNanos: UInt64?
    public var gpa: UInt64
    public var size: UInt64
    public var direction: ConversionDirection
    public var trigger: ConversionTrigger
    public var decision: ConversionDecision
    public var reason: String
    public var policyVersion: String
    public var source: EventSource
    /// Bytes whose state this conversion changes (pages already in the target state do not count).
    public var changedBytes: UInt64
    /// Bytes whose old copy was freed (discard).
    public var discardedBytes: UInt64
    /// What the guest read back (0, or a negative KVM error code); implicit conversions report 0.
    public var guestResult: Int64
    /// For invalid requests, the page count as the guest gave it (their `size` is 0:
    /// nothing was converted, and a guest-chosen count must not overflow audit sums).
    public var requestedPages: UInt64?

    public init(
        vmID: Int64, vm: String, vcpu: UInt32, requestedNanos: UInt64, completedNanos: UInt64?, gpa: UInt64,
        size: UInt64,
        direction: ConversionDirection, trigger: ConversionTrigger, decision: ConversionDecision, reason: String,
        policyVersion: String, source: EventSource, changedBytes: UInt64 = 0, discardedBytes: UInt64,
        guestResult: Int64
    ) {
        self.vmID = vmID
        self.vm = vm
        self.vcpu = vcpu
        self.requestedNanos = requestedNanos
        self.completedNanos = completedNanos
        self.gpa = gpa
        self.size = size
        self.direction = direction
        self.trigger = trigger
        self.decision = decision
        self.reason = reason
        self.policyVersion = policyVersion
        self.source = source
        self.changedBytes = changedBytes
        self.discardedBytes = discardedBytes
        self.guestResult = guestResult
    }
}

/// Waits until a record is durable (no-op for sinks that are durable at once).
public struct EventReceipt: Sendable {
    /// Returns nil once durable, or why the record could not be made durable.
    private let waiter: (@Sendable () -> RecordingFailure?)?

    public init(waiter: (@Sendable () -> RecordingFailure?)? = nil) {
        self.waiter = waiter
    }

    public static let done = EventReceipt()

    /// Blocks until the record is durable; returns the failure when it cannot be.
    @discardableResult
    public func wait() -> RecordingFailure? { waiter?() }
}

/// Identifies a conversion recorded as pending, to finish it later.
public struct ConversionTicket: Sendable, Hashable {
    public let id: UInt64
    public init(id: UInt64) { self.id = id }
}

/// A conversion handed to the sink as pending: its ticket, and the receipt that
/// says the pending row is durable (the vCPU waits for it before resuming).
public struct PendingConversion: Sendable {
    public let ticket: ConversionTicket
    public let receipt: EventReceipt
    public init(ticket: ConversionTicket, receipt: EventReceipt) {
        self.ticket = ticket
        self.receipt = receipt
    }
}

/// Where memory faults and conversions are recorded. The VMM hands a record
/// over before doing the work and waits for its receipt before the vCPU
/// resumes, so nothing a guest saw acted on can be missing from the record.
public protocol EventSink: Sendable {
    func record(fault: MemoryFaultRecord) -> EventReceipt
    /// Records a conversion that is already final (denied, invalid).
    func record(conversion: ConversionRecord) -> EventReceipt
    /// Records an allowed conversion as pending, before the backend acts. The
    /// backend's work overlaps the write; the caller waits for the receipt after it.
    func begin(conversion: ConversionRecord) -> PendingConversion
    /// Completes a pending conversion. Durable eventually: a crash before then
    /// leaves the row pending (incomplete), never lost.
    func finish(
        _ ticket: ConversionTicket, decision: ConversionDecision, reason: String?, completedNanos: UInt64,
        discardedBytes: UInt64, guestResult: Int64)
    /// Adds to the count of events over a VM's recording budget (asynchronous: a count, not an event).
    func record(aggregate: EventAggregate)
}
