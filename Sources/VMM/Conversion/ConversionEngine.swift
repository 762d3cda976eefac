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
}

/// What the vCPU does after a fault.
public enum FaultResolution: Sendable, Equatable {
    /// The page is (now) where the access needs it: complete the access and resume.
    /// `spurious` when no conversion was needed (another vCPU won the race, or KVM
    /// could not map a page already in the wanted state).
    case resume(spurious: Bool)
    /// Policy or missing backing: stop this VM as `faulted`.
    case stopVM(reason: String)
    /// The backend broke part-way: the VM's memory is inconsistent; fail it.
    case failVM(reason: String)
}

/// What an explicit request returns to the guest.
public struct ExplicitOutcome: Sendable, Equatable {
    /// The value for the guest's RAX: 0 or a negative KVM error code.
    public var guestResult: Int64
    /// Set when the VM must fail (the backend broke part-way).
    public var fatal: String?

    public var raxValue: UInt64 { UInt64(bitPattern: guestResult) }
}

/// Carries out one VM's conversions: validation, policy, recording, backend.
/// All conversions of a VM are serialized by its lock; the wait for a record to
/// become durable happens outside the lock so vCPUs can share a group commit.
public final class ConversionEngine: Sendable {
    private struct State {
        var map: PageStateMap
        var limiter: RateLimiter?
        var limiterVersion = ""
        var statistics = ConversionStatistics()
    }

    private enum Applied {
        case applied
        case denied(String)
        case refused(String)
        case broken(String)
    }

    public let vmID: Int64
    public let vmName: String
    public let ramSize: UInt64
    public let backend: MemoryBackend
    private let policies: PolicyStore
    private let sink: EventSink
    private let logger: Logger
    private let state: Mutex<State>

    public init(vmID: Int64 = 0, vmName: String, ramSize: UInt64, initial map: PageStateMap, backend: MemoryBackend,
                policies: PolicyStore, sink: EventSink, logger: Logger) {
        self.vmID = vmID
        self.vmName = vmName
        self.ramSize = ramSize
        self.backend = backend
        self.policies = policies
        self.sink = sink
        self.logger = logger
        state = Mutex(State(map: map))
    }

    public var pageStates: PageStateMap { state.withLock { $0.map } }
    public var statistics: ConversionStatistics { state.withLock { $0.statistics } }

    // MARK: Explicit (KVM_HC_MAP_GPA_RANGE)

    public func explicit(_ call: MapGPARangeCall, vcpu: UInt32) -> ExplicitOutcome {
        let requested = MonotonicClock.wallNanos()
        let dataRAM = state.withLock { $0.map.bounds }
        switch call.validate(dataRAM: dataRAM, ramSize: ramSize, vcpu: vcpu) {
        case .failure(let rejection):
            // Guest-supplied: saturate rather than overflow.
            let (size, overflow) = call.pageCount.multipliedReportingOverflow(by: PageRange.pageSize)
            let record = ConversionRecord(
                vmID: vmID, vm: vmName, vcpu: vcpu, requestedNanos: requested, completedNanos: requested, gpa: call.gpa,
                size: overflow ? .max : size, direction: call.attributes & MapGPARangeCall.encrypted != 0 ? .toPrivate : .toShared,
                trigger: .explicit, decision: .invalid, reason: rejection.reason, policyVersion: policies.policy.version,
                source: .emulated, discardedBytes: 0, guestResult: rejection.code.rawValue)
            let receipt = state.withLock { state in
                state.statistics.count(record)
                return sink.record(conversion: record)
            }
            if let failure = receipt.wait() {
                return ExplicitOutcome(guestResult: rejection.code.rawValue, fatal: "event store failed: \(failure)")
            }
            logger.debug("invalid conversion request", metadata: ["vcpu": "\(vcpu)", "reason": "\(rejection.reason)"])
            return ExplicitOutcome(guestResult: rejection.code.rawValue)
        case .success(let request):
            let (applied, receipt) = convert(request, requestedNanos: requested)
            // Nothing the guest sees acted on may be missing from the record.
            if let failure = receipt.wait() {
                return ExplicitOutcome(guestResult: GuestErrorCode.invalid.rawValue, fatal: "event store failed: \(failure)")
            }
            switch applied {
            case .applied: return ExplicitOutcome(guestResult: 0)
            case .denied: return ExplicitOutcome(guestResult: GuestErrorCode.permission.rawValue)
            case .refused: return ExplicitOutcome(guestResult: GuestErrorCode.tooBig.rawValue)
            case .broken(let reason): return ExplicitOutcome(guestResult: GuestErrorCode.invalid.rawValue, fatal: reason)
            }
        }
    }

    // MARK: Implicit (memory faults)

    public func fault(_ fault: GuestFault, vcpu: UInt32) -> FaultResolution {
        let now = MonotonicClock.wallNanos()
        let record = MemoryFaultRecord(vmID: vmID, vm: vmName, vcpu: vcpu, timeNanos: now, gpa: fault.range.start, size: fault.range.size,
                                       flags: fault.wantsPrivate ? MemoryFaultRecord.flagPrivate : 0, source: fault.source)
        let wanted: PageState = fault.wantsPrivate ? .private : .shared
        let (faultReceipt, current, mapped) = state.withLock { state in
            state.statistics.count(record)
            return (sink.record(fault: record), state.map.uniformState(of: fault.range),
                    backend.isMapped(fault.range, in: state.map))
        }
        if current == wanted {
            if let failure = faultReceipt.wait() { return .failVM(reason: "event store failed: \(failure)") }
            // Another vCPU converted it first, or the access raced a slot update: just retry.
            if mapped { return .resume(spurious: true) }
            return .stopVM(reason: "memory fault at gpa 0x\(String(fault.range.start, radix: 16)): the \(wanted.rawValue) page has no backing")
        }
        let request = ConversionRequest(range: fault.range, direction: ConversionDirection(to: wanted), trigger: .implicit, vcpu: vcpu)
        let (applied, receipt) = convert(request, requestedNanos: now)
        // Records commit in order: the conversion's receipt covers the fault's too (one commit, not two).
        if let failure = receipt.wait() { return .failVM(reason: "event store failed: \(failure)") }
        switch applied {
        case .applied: return .resume(spurious: false)
        case .denied(let reason), .refused(let reason):
            return .stopVM(reason: "implicit conversion of \(fault.range) \(request.direction.rawValue) refused: \(reason)")
        case .broken(let reason): return .failVM(reason: reason)
        }
    }

    // MARK: Shared path

    private func convert(_ request: ConversionRequest, requestedNanos: UInt64) -> (Applied, EventReceipt) {
        let versioned = policies.policy
        return state.withLock { state in
            if state.limiterVersion != versioned.version {
                state.limiter = versioned.policy.limits.maxConversionsPerSecond.map { RateLimiter(perSecond: $0) }
                state.limiterVersion = versioned.version
            }
            let sharedAfter = request.direction == .toShared
                ? state.map.sharedBytes + state.map.bytes(in: request.range, state: .private) : state.map.sharedBytes
            let decision = versioned.policy.evaluate(request, vm: vmName, sharedBytesAfter: sharedAfter,
                                                     nowNanos: MonotonicClock.nanos(), limiter: &state.limiter)
            var record = ConversionRecord(
                vmID: vmID, vm: vmName, vcpu: request.vcpu, requestedNanos: requestedNanos, completedNanos: nil,
                gpa: request.range.start, size: request.range.size, direction: request.direction, trigger: request.trigger,
                decision: decision.allowed ? .pending : .denied, reason: decision.reason, policyVersion: versioned.version,
                source: backend.kind == .attributes ? .kvm : .emulated, discardedBytes: 0,
                guestResult: decision.allowed ? 0 : GuestErrorCode.permission.rawValue)
            guard decision.allowed else {
                record.completedNanos = MonotonicClock.wallNanos()
                state.statistics.count(record)
                return (.denied(decision.reason), sink.record(conversion: record))
            }
            record.changedBytes = state.map.bytes(in: request.range, state: request.direction.target.opposite)
            // Hand the record over first; the backend works while it is written.
            let pending = sink.begin(conversion: record)
            var after = state.map
            after.set(request.range, to: request.direction.target)
            let outcome: Applied
            do throws(BackendError) {
                let applied = try backend.apply(request.range, to: request.direction.target, discard: decision.discard,
                                                before: state.map, after: after)
                state.map = after
                record.decision = .applied
                record.discardedBytes = applied.discardedBytes
                outcome = .applied
                sink.finish(pending.ticket, decision: .applied, reason: nil, completedNanos: MonotonicClock.wallNanos(),
                            discardedBytes: applied.discardedBytes, guestResult: 0)
            } catch {
                let code: GuestErrorCode
                if case .memslotLimit = error {
                    outcome = .refused(error.description)
                    code = .tooBig
                } else {
                    outcome = .broken(error.description)
                    code = .invalid
                }
                record.decision = .failed
                sink.finish(pending.ticket, decision: .failed, reason: error.description, completedNanos: MonotonicClock.wallNanos(),
                            discardedBytes: 0, guestResult: code.rawValue)
                logger.warning("conversion failed", metadata: ["range": "\(request.range)", "error": "\(error)"])
            }
            state.statistics.count(record)
            return (outcome, pending.receipt)
        }
    }
}
