import KVM
import Logging
import MemoryModel
import Synchronization

/// A memory fault as the engine sees it, from either backend.
public struct GuestFault: Sendable, Equatable {
    /// The pages the access needs (one page for the alias backend).
    public var range: PageRange
    /// True when the guest accessed the memory as private.
    public var wantsPrivate: Bool
    public var source: EventSource
    /// nil: unknown.
    public var access: FaultAccess?

    public init(range: PageRange, wantsPrivate: Bool, source: EventSource, access: FaultAccess?) {
        self.range = range
        self.wantsPrivate = wantsPrivate
        self.source = source
        self.access = access
    }
}

/// What the vCPU does after a fault.
public enum FaultResolution: Sendable, Equatable {
    /// The page is (now) where the access needs it: complete the access and resume.
    /// `spurious` when no conversion was needed (another vCPU converted it first).
    case resume(spurious: Bool)
    /// Policy or missing backing: stop this VM as `faulted`.
    case stopVM(reason: String)
    /// The record could not be made durable, or the backend broke part-way: fail the VM.
    case failVM(ConversionFailure)
}

/// Why a conversion makes its VM fail: its record or its memory can no longer be trusted.
public enum ConversionFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// A fault or conversion record could not be made durable.
    case recording(RecordingFailure)
    /// The backend failed part-way: the VM's memory may be inconsistent.
    case backend(BackendError)

    public var description: String {
        switch self {
        case .recording(let failure): "event store failed: \(failure)"
        case .backend(let error): "\(error)"
        }
    }
}

/// What an explicit request returns to the guest.
public struct ExplicitOutcome: Sendable, Equatable {
    /// The value for the guest's RAX: 0 or a negative KVM error code.
    public var guestResult: Int64
    /// Set when the VM must fail (its record or its memory can no longer be trusted).
    public var fatal: ConversionFailure?

    public var raxValue: UInt64 { UInt64(bitPattern: guestResult) }
}

/// Carries out one VM's conversions: validation, policy, recording, backend.
///
/// Conversions hold a lock on their page range (all of data RAM when the
/// backend's scope demands it), so disjoint conversions on different vCPUs run
/// side by side and overlapping ones in order. The page map, policy state and
/// statistics sit behind one short mutex that is never held across a syscall.
/// The wait for a record to become durable happens outside both, so vCPUs can
/// share a group commit.
public final class ConversionEngine: Sendable {
    private struct State {
        var map: PageStateMap
        var limiter: RateLimiter?
        var limiterVersion = ""
        var statistics = ConversionStatistics()
        /// Bytes going shared in conversions still in flight, counted against `max_shared_bytes`.
        var sharedInFlight: UInt64 = 0
        /// Rows per second for what a guest can produce at will; nil: every event its row.
        var budget: RecordingBudget?
    }

    private enum Applied {
        case applied
        case denied(String)
        /// The backend's mapping limit (memslots or page-state runs) was hit; nothing changed.
        case mappingLimitReached(String)
        case broken(BackendError)
    }

    /// An allowed conversion between its decision and the backend's work.
    private struct Admitted {
        var record: ConversionRecord
        let pending: PendingConversion
        let before: PageStateMap
        let discard: Bool
        let reservedShared: UInt64
    }

    public let vmID: Int64
    public let vmName: String
    public let ramSize: UInt64
    public let dataRAM: PageRange
    public let backend: MemoryBackend
    private let policies: PolicyStore
    private let sink: EventSink
    private let clock: EngineClock
    private let logger: Logger
    private let state: Mutex<State>
    private let locks = PageRangeLocks()

    public init(
        vmID: Int64 = 0, vmName: String, ramSize: UInt64, initial map: PageStateMap, backend: MemoryBackend,
        policies: PolicyStore, sink: EventSink, clock: EngineClock = SystemClock(),
        recordingBudget: UInt64? = nil, logger: Logger
    ) {
        self.vmID = vmID
        self.vmName = vmName
        self.ramSize = ramSize
        self.dataRAM = map.bounds
        self.backend = backend
        self.policies = policies
        self.sink = sink
        self.clock = clock
        self.logger = logger
        state = Mutex(State(map: map, budget: recordingBudget.map { RecordingBudget(rowsPerSecond: $0) }))
    }

    /// Writes the counts of events over the recording budget not yet written (at the VM's end).
    public func flushAggregates() {
        let pending = state.withLock { state -> [EventAggregate] in
            guard var budget = state.budget else { return [] }
            defer { state.budget = budget }
            return budget.drain(vmID: vmID)
        }
        for aggregate in pending { sink.record(aggregate: aggregate) }
    }

    /// The row of an event a guest can cause at will, within the VM's budget; beyond
    /// it the event is only counted (statistics still count every event).
    private func budgeted(
        _ kind: AggregateKind, wallNanos: UInt64, state: inout State,
        _ write: () -> EventReceipt
    ) -> EventReceipt {
        guard var budget = state.budget else { return write() }
        let admission = budget.admit(kind, vmID: vmID, wallNanos: wallNanos, monotonicNanos: clock.monotonicNanos())
        state.budget = budget
        switch admission {
        case .record:
            return write()
        case .counted(let flushed):
            state.statistics.countUnrecorded(kind)
            if let flushed { sink.record(aggregate: flushed) }
            return .done
        }
    }

    public var pageStates: PageStateMap { state.withLock { $0.map } }
    public var statistics: ConversionStatistics { state.withLock { $0.statistics } }

    /// The range a conversion of `range` must hold.
    private func lockScope(of range: PageRange) -> PageRange {
        backend.scope == .pageRange ? range : dataRAM
    }

    // MARK: Explicit (KVM_HC_MAP_GPA_RANGE)

    public func explicit(_ call: MapGPARangeCall, vcpu: UInt32) -> ExplicitOutcome {
        let requested = clock.wallNanos()
        switch call.validate(dataRAM: dataRAM, ramSize: ramSize, vcpu: vcpu) {
        case .failure(let rejection):
            // Guest-supplied: the count goes in its own field, and the size is 0 (nothing converted).
            var record = ConversionRecord(
                vmID: vmID, vm: vmName, vcpu: vcpu, requestedNanos: requested, completedNanos: requested, gpa: call.gpa,
                size: 0, direction: call.attributes & MapGPARangeCall.encrypted != 0 ? .toPrivate : .toShared,
                trigger: .explicit, decision: .invalid, reason: rejection.reason,
                policyVersion: policies.policy.version,
                source: .emulated, discardedBytes: 0, guestResult: rejection.code.rawValue)
            record.requestedPages = call.pageCount
            let receipt = state.withLock { state in
                state.statistics.count(record)
                return budgeted(.invalid, wallNanos: requested, state: &state) { sink.record(conversion: record) }
            }
            if let failure = receipt.wait() {
                return ExplicitOutcome(guestResult: rejection.code.rawValue, fatal: .recording(failure))
            }
            logger.debug("invalid conversion request", metadata: ["vcpu": "\(vcpu)", "reason": "\(rejection.reason)"])
            return ExplicitOutcome(guestResult: rejection.code.rawValue)
        case .success(let request):
            let scope = lockScope(of: request.range)
            let (applied, receipt) = locks.withLock(scope) { convert(request, requestedNanos: requested) }
            // Nothing the guest sees acted on may be missing from the record.
            if let failure = receipt.wait() {
                return ExplicitOutcome(guestResult: GuestErrorCode.invalid.rawValue, fatal: .recording(failure))
            }
            switch applied {
            case .applied: return ExplicitOutcome(guestResult: 0)
            case .denied: return ExplicitOutcome(guestResult: GuestErrorCode.permission.rawValue)
            case .mappingLimitReached: return ExplicitOutcome(guestResult: GuestErrorCode.tooBig.rawValue)
            case .broken(let error):
                return ExplicitOutcome(guestResult: GuestErrorCode.invalid.rawValue, fatal: .backend(error))
            }
        }
    }

    // MARK: Implicit (memory faults)

    private enum FaultStep {
        /// The pages were already in the wanted state when the fault was handled.
        case settled(EventReceipt, mapped: Bool)
        case converted(Applied, EventReceipt, ConversionDirection)
    }

    public func fault(_ fault: GuestFault, vcpu: UInt32) -> FaultResolution {
        guard fault.range.isPageAligned, !fault.range.isEmpty, dataRAM.contains(fault.range) else {
            return .stopVM(reason: "memory fault at \(fault.range) outside data RAM \(dataRAM)")
        }
        let now = clock.wallNanos()
        let record = MemoryFaultRecord(
            vmID: vmID, vm: vmName, vcpu: vcpu, timeNanos: now, gpa: fault.range.start, size: fault.range.size,
            flags: fault.wantsPrivate ? MemoryFaultRecord.flagPrivate : 0, source: fault.source,
            access: fault.access)
        let wanted: PageState = fault.wantsPrivate ? .private : .shared
        // Holding the range makes a fault that races a conversion of the same page
        // wait for it, then see the page's new state.
        let step = locks.withLock(lockScope(of: fault.range)) { () -> FaultStep in
            let (faultReceipt, settled, mapped) = state.withLock { state in
                state.statistics.count(record)
                let current = state.map.uniformState(of: fault.range)
                // Where faults are not requests (sw_protected), a fault is settled by retrying.
                let settled = current == wanted || !backend.faultsRequestConversion
                if settled { state.statistics.countFaultWithoutConversion() }
                let receipt = budgeted(.fault, wallNanos: now, state: &state) { sink.record(fault: record) }
                return (receipt, settled, backend.isMapped(fault.range, in: state.map))
            }
            if settled { return .settled(faultReceipt, mapped: mapped) }
            let request = ConversionRequest.implicit(range: fault.range, to: wanted, vcpu: vcpu)
            let (applied, receipt) = convert(request, requestedNanos: now)
            return .converted(applied, receipt, request.direction)
        }
        switch step {
        case .settled(let receipt, let mapped):
            if let failure = receipt.wait() { return .failVM(.recording(failure)) }
            if mapped { return .resume(spurious: true) }
            return .stopVM(
                reason:
                    "memory fault at gpa 0x\(String(fault.range.start, radix: 16)): the \(wanted.rawValue) page has no backing"
            )
        case .converted(let applied, let receipt, let direction):
            // Records commit in order: the conversion's receipt covers the fault's too (one commit, not two).
            if let failure = receipt.wait() { return .failVM(.recording(failure)) }
            switch applied {
            case .applied: return .resume(spurious: false)
            case .denied(let reason), .mappingLimitReached(let reason):
                return .stopVM(reason: "implicit conversion of \(fault.range) \(direction.rawValue) refused: \(reason)")
            case .broken(let error): return .failVM(.backend(error))
            }
        }
    }

    // MARK: Shared path (the caller holds the range lock)

    private func convert(_ request: ConversionRequest, requestedNanos: UInt64) -> (Applied, EventReceipt) {
        switch admit(request, requestedNanos: requestedNanos) {
        case .failure(let denied):
            return (.denied(denied.reason), denied.receipt)
        case .success(let admitted):
            let pending = admitted.pending
            let record = admitted.record
            let reserved = admitted.reservedShared
            let result = carryOut(request, admitted: consume admitted)
            return (
                finish(request, record: record, pending: pending, reservedShared: reserved, result: result),
                pending.receipt
            )
        }
    }

    private struct Denied: Error {
        let reason: String
        let receipt: EventReceipt
    }

    /// Decides under the policy and hands the record over (pending) before the backend acts.
    private func admit(_ request: ConversionRequest, requestedNanos: UInt64) -> Result<Admitted, Denied> {
        let versioned = policies.policy
        return state.withLock { state in
            if state.limiterVersion != versioned.version {
                state.limiter = versioned.policy.limits.maxConversionsPerSecond.map { RateLimiter(perSecond: $0) }
                state.limiterVersion = versioned.version
            }
            let goingShared = request.direction == .toShared ? state.map.bytes(in: request.range, state: .private) : 0
            let sharedAfter = state.map.sharedBytes + state.sharedInFlight + goingShared
            let decision = versioned.policy.evaluate(
                request, vm: vmName, sharedBytesAfter: sharedAfter,
                nowNanos: clock.monotonicNanos(), limiter: &state.limiter)
            var record = ConversionRecord(
                vmID: vmID, vm: vmName, vcpu: request.vcpu, requestedNanos: requestedNanos, completedNanos: nil,
                gpa: request.range.start, size: request.range.size, direction: request.direction,
                trigger: request.trigger,
                decision: decision.allowed ? .pending : .denied, reason: decision.reason,
                policyVersion: versioned.version,
                source: backend.kind == .attributes ? .kvm : .emulated, discardedBytes: 0,
                guestResult: decision.allowed ? 0 : GuestErrorCode.permission.rawValue)
            guard decision.allowed else {
                let completed = clock.wallNanos()
                record.completedNanos = completed
                state.statistics.count(record)
                let receipt = budgeted(.denied, wallNanos: completed, state: &state) { sink.record(conversion: record) }
                return .failure(Denied(reason: decision.reason, receipt: receipt))
            }
            record.changedBytes = state.map.bytes(in: request.range, state: request.direction.target.opposite)
            state.sharedInFlight += goingShared
            return .success(
                Admitted(
                    record: record, pending: sink.begin(conversion: record), before: state.map,
                    discard: decision.discard, reservedShared: goingShared))
        }
    }

    /// The backend's work, outside the state mutex. Consumes the map snapshot so
    /// that `finish` updates the map in place (no copy of its runs).
    private func carryOut(_ request: ConversionRequest, admitted: consuming Admitted) -> Result<
        AppliedConversion, BackendError
    > {
        do throws(BackendError) {
            return .success(
                try backend.apply(
                    request.range, to: request.direction.target, discard: admitted.discard,
                    before: admitted.before))
        } catch {
            return .failure(error)
        }
    }

    private func finish(
        _ request: ConversionRequest, record: ConversionRecord, pending: PendingConversion, reservedShared: UInt64,
        result: Result<AppliedConversion, BackendError>
    ) -> Applied {
        var record = record
        return state.withLock { state in
            state.sharedInFlight -= reservedShared
            let outcome: Applied
            switch result {
            case .success(let applied):
                state.map.set(request.range, to: request.direction.target)
                record.decision = .applied
                record.discardedBytes = applied.discardedBytes
                outcome = .applied
                record.completedNanos = clock.wallNanos()
                sink.finish(
                    pending.ticket, decision: .applied, reason: nil, completedNanos: record.completedNanos ?? 0,
                    discardedBytes: applied.discardedBytes, guestResult: 0)
            case .failure(let error):
                let code: GuestErrorCode
                if case .mappingLimit = error {
                    // The guest fragmented its memory too far: its request fails, the VM runs on.
                    outcome = .mappingLimitReached(error.description)
                    code = .tooBig
                    logger.debug("conversion refused", metadata: ["range": "\(request.range)", "error": "\(error)"])
                } else {
                    outcome = .broken(error)
                    code = .invalid
                    logger.warning("conversion failed", metadata: ["range": "\(request.range)", "error": "\(error)"])
                }
                record.decision = .failed
                record.completedNanos = clock.wallNanos()
                sink.finish(
                    pending.ticket, decision: .failed, reason: error.description,
                    completedNanos: record.completedNanos ?? 0,
                    discardedBytes: 0, guestResult: code.rawValue)
            }
            state.statistics.count(record)
            return outcome
        }
    }
}
