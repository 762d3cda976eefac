/// One memory-fault row.
public struct FaultEvent: Codable, Sendable, Equatable {
    public var eventId: Int64
    public var vmId: Int64
    public var vcpu: Int
    public var timeNs: UInt64
    public var gpa: UInt64
    public var size: UInt64
    /// KVM_MEMORY_EXIT_FLAG_*: bit 3 = PRIVATE.
    public var flags: UInt64
    /// kvm or emulated.
    public var source: String
    /// read, write, exec, or unknown (KVM did not say, or the row predates schema 6).
    /// Absent only from agents older than the field.
    public var access: String?

    public init(
        eventId: Int64, vmId: Int64, vcpu: Int, timeNs: UInt64, gpa: UInt64, size: UInt64, flags: UInt64,
        source: String,
        access: String? = "unknown"
    ) {
        self.eventId = eventId
        self.vmId = vmId
        self.vcpu = vcpu
        self.timeNs = timeNs
        self.gpa = gpa
        self.size = size
        self.flags = flags
        self.source = source
        self.access = access
    }

    /// read, write or exec; nil when unknown.
    public var knownAccess: String? { access == "unknown" ? nil : access }
}

/// One conversion row.
public struct ConversionEvent: Codable, Sendable, Equatable {
    public var eventId: Int64
    public var vmId: Int64
    public var vcpu: Int
    public var requestedNs: UInt64
    public var completedNs: UInt64?
    public var gpa: UInt64
    public var size: UInt64
    public var direction: String
    public var trigger: String
    public var decision: String
    public var reason: String
    public var policyVersion: String
    public var source: String
    public var changedBytes: UInt64
    public var discardedBytes: UInt64
    public var guestResult: Int64
    /// Invalid requests only: the page count the guest asked for (their size is 0).
    public var requestedPages: UInt64?

    public init(
        eventId: Int64, vmId: Int64, vcpu: Int, requestedNs: UInt64, completedNs: UInt64?, gpa: UInt64, size: UInt64,
        direction: String, trigger: String, decision: String, reason: String, policyVersion: String, source: String,
        changedBytes: UInt64, discardedBytes: UInt64, guestResult: Int64, requestedPages: UInt64? = nil
    ) {
        self.requestedPages = requestedPages
        self.eventId = eventId
        self.vmId = vmId
        self.vcpu = vcpu
        self.requestedNs = requestedNs
        self.completedNs = completedNs
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

/// A page of rows; `nextCursor` is absent on the last page.
public struct FaultPage: Codable, Sendable, Equatable {
    public var items: [FaultEvent]
    public var nextCursor: String?
    public init(items: [FaultEvent], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

public struct ConversionPage: Codable, Sendable, Equatable {
    public var items: [ConversionEvent]
    public var nextCursor: String?
    public init(items: [ConversionEvent], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// A VM's lifecycle step, as `GET /v1/events/stream` carries it (`vm_created` … `vm_ended`).
public struct VMLifecycleEvent: Codable, Sendable, Equatable {
    public var eventId: Int64
    public var vmId: Int64
    public var vmName: String
    /// created, started, paused, resumed or ended.
    public var what: String
    public var timeNs: UInt64
    /// Ended only: stopped, crashed, failed, faulted or lost, why, and the guest's exit status.
    public var finalState: String?
    public var reason: String?
    public var exitStatus: Int?
}

/// A policy application, as `GET /v1/events/stream` carries it (`policy_applied`).
public struct PolicyApplicationEvent: Codable, Sendable, Equatable {
    public var eventId: Int64
    /// The application's id in the policy history.
    public var id: Int64
    public var version: String
    public var name: String?
    public var appliedNs: UInt64
    public var appliedBy: String
    /// Who (token name, or session), through what (`api`, `--policy FILE`, `rollout ID wave N`,
    /// `rollback of rollout ID`), the rollout, and the request's Idempotency-Key. Absent on older rows.
    public var principal: String?
    public var channel: String?
    public var rolloutId: String?
    public var idempotencyKey: String?
}

/// One entry of `GET /v1/events` (a fault or a conversion), or of its stream, which also
/// carries VM lifecycle events and policy applications: exactly one member is set.
public struct EventEntry: Codable, Sendable, Equatable {
    public var eventId: Int64
    /// The audit chain's value after this event (hex SHA-256; docs/AUDIT-CHAIN.md). Absent from agents before it.
    public var chain: String?
    /// memory_fault, conversion; on the stream also vm_created … vm_ended and policy_applied.
    public var kind: String
    public var memoryFault: FaultEvent?
    public var conversion: ConversionEvent?
    public var vmEvent: VMLifecycleEvent?
    public var policyApplication: PolicyApplicationEvent?

    public init(fault: FaultEvent) {
        eventId = fault.eventId
        kind = "memory_fault"
        memoryFault = fault
        conversion = nil
    }

    public init(conversion: ConversionEvent) {
        eventId = conversion.eventId
        kind = "conversion"
        memoryFault = nil
        self.conversion = conversion
    }
}

/// `GET /v1/events?after=N`: events in id order, all final. Pull again with `after=next_after`.
public struct EventPage: Codable, Sendable, Equatable {
    public var events: [EventEntry]
    /// The cursor for the next pull (the last id returned, or `after` when none were).
    public var nextAfter: Int64
    public init(events: [EventEntry], nextAfter: Int64) {
        self.events = events
        self.nextAfter = nextAfter
    }
}

/// Filters shared by `GET /v1/memory-faults` and `GET /v1/conversions`.
public struct EventFilter: Sendable, Equatable {
    public var vm: Int64?
    /// Faults only: read, write, exec or unknown.
    public var access: String?
    public var direction: String?
    public var trigger: String?
    public var decision: String?
    /// Nanoseconds since the epoch, inclusive.
    public var since: UInt64?
    /// Nanoseconds since the epoch, exclusive.
    public var until: UInt64?
    /// Rows after this event id.
    public var after: Int64 = 0
    public var limit: Int = 100
    /// The `limit` newest matching rows (still listed oldest first), with no cursor.
    public var newest = false

    public init() {}
}
