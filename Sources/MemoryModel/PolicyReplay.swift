/// What a candidate policy would have decided for recorded conversion requests. Pure.
///
/// Requests are fed in the order they were recorded. Each VM's page states are
/// replayed from its initial state, so `max_shared_bytes` sees the shared bytes the
/// candidate's own decisions would have left, and its rate limit runs on the
/// recorded request times: replaying the policy that made a history gives back
/// that history's decisions.
public struct PolicyReplay: Sendable {
    /// What the store keeps of a VM: enough to rebuild its page states.
    public struct VM: Sendable {
        public var name: String
        public var dataRAM: PageRange
        public var initialState: PageState

        public init(name: String, dataRAM: PageRange, initialState: PageState) {
            self.name = name
            self.dataRAM = dataRAM
            self.initialState = initialState
        }
    }

    /// One recorded conversion request.
    public struct Request: Sendable {
        public var eventID: Int64
        public var vmID: Int64
        public var requestedNanos: UInt64
        public var range: PageRange
        public var direction: ConversionDirection
        public var trigger: ConversionTrigger
        public var vcpu: UInt32
        public var decision: ConversionDecision
        public var reason: String

        public init(
            eventID: Int64, vmID: Int64, requestedNanos: UInt64, range: PageRange, direction: ConversionDirection,
            trigger: ConversionTrigger, vcpu: UInt32, decision: ConversionDecision, reason: String
        ) {
            self.eventID = eventID
            self.vmID = vmID
            self.requestedNanos = requestedNanos
            self.range = range
            self.direction = direction
            self.trigger = trigger
            self.vcpu = vcpu
            self.decision = decision
            self.reason = reason
        }
    }

    /// A request decided differently.
    public struct Difference: Sendable {
        public var request: Request
        public var wasAllowed: Bool
        public var newReason: String
    }

    public struct VMCounts: Sendable, Equatable {
        public var name: String
        public var requests = 0
        public var allowedToDenied = 0
        public var deniedToAllowed = 0
    }

    public struct RuleCounts: Sendable, Equatable {
        public var allowed = 0
        public var denied = 0
    }

    private struct VMState {
        let vm: VM
        var map: PageStateMap
        var limiter: RateLimiter?
    }

    public let candidate: Policy
    public let sampleLimit: Int
    private var states: [Int64: VMState] = [:]
    /// Requests replayed, by (was allowed, is allowed).
    public private(set) var transitions: [Bool: [Bool: Int]] = [
        true: [true: 0, false: 0], false: [true: 0, false: 0],
    ]
    public private(set) var byVM: [Int64: VMCounts] = [:]
    /// The candidate's decisions by what decided them: `rule N`, `default explicit`, `max_shared_bytes` ….
    public private(set) var byRule: [String: RuleCounts] = [:]
    public private(set) var samples: [Difference] = []
    /// Requests the policy never saw (invalid ones, and pending ones of a running VM).
    public private(set) var skipped: [ConversionDecision: Int] = [:]
    /// Requests of VMs the store no longer knows.
    public private(set) var unknownVM = 0

    public init(candidate: Policy, sampleLimit: Int = 20) {
        self.candidate = candidate
        self.sampleLimit = sampleLimit
    }

    public var requests: Int { transitions.values.reduce(0) { $0 + $1.values.reduce(0, +) } }
    public var changed: Int { (transitions[true]?[false] ?? 0) + (transitions[false]?[true] ?? 0) }
    public var allowedToDenied: Int { transitions[true]?[false] ?? 0 }

    /// Makes a VM known before its requests come.
    public mutating func add(vm id: Int64, _ vm: VM) {
        states[id] = VMState(
            vm: vm, map: PageStateMap(bounds: vm.dataRAM, initial: vm.initialState),
            limiter: candidate.limits.maxConversionsPerSecond.map { RateLimiter(perSecond: $0) })
    }

    /// A request from before the replayed window: its recorded outcome only moves the page states.
    public mutating func advance(_ request: Request) {
        guard request.decision == .applied, states[request.vmID] != nil else { return }
        _ = states[request.vmID]?.map.set(request.range, to: request.direction.target)
    }

    /// Decides `request` under the candidate and applies what it would have allowed.
    public mutating func replay(_ request: Request) {
        let wasAllowed: Bool
        switch request.decision {
        case .applied, .failed, .incomplete: wasAllowed = true
        case .denied: wasAllowed = false
        case .invalid, .pending:
            skipped[request.decision, default: 0] += 1
            return
        }
        guard var state = states[request.vmID] else {
            unknownVM += 1
            return
        }
        let conversion = ConversionRequest(
            range: request.range, direction: request.direction, trigger: request.trigger, vcpu: request.vcpu)
        let goingShared = request.direction == .toShared ? state.map.bytes(in: request.range, state: .private) : 0
        let decision = candidate.evaluate(
            conversion, vm: state.vm.name, sharedBytesAfter: state.map.sharedBytes + goingShared,
            nowNanos: request.requestedNanos, limiter: &state.limiter)
        // A conversion the backend failed fails again; an allowed one changes the pages.
        if decision.allowed, request.decision != .failed, state.map.bounds.contains(request.range) {
            _ = state.map.set(request.range, to: request.direction.target)
        }
        states[request.vmID] = state

        transitions[wasAllowed, default: [:]][decision.allowed, default: 0] += 1
        var counts = byVM[request.vmID] ?? VMCounts(name: state.vm.name)
        counts.requests += 1
        if wasAllowed && !decision.allowed { counts.allowedToDenied += 1 }
        if !wasAllowed && decision.allowed { counts.deniedToAllowed += 1 }
        byVM[request.vmID] = counts
        let source = Self.source(of: decision, trigger: request.trigger)
        if decision.allowed {
            byRule[source, default: RuleCounts()].allowed += 1
        } else {
            byRule[source, default: RuleCounts()].denied += 1
        }
        if wasAllowed != decision.allowed, samples.count < sampleLimit {
            samples.append(Difference(request: request, wasAllowed: wasAllowed, newReason: decision.reason))
        }
    }

    /// What made a decision, as the report groups it.
    static func source(of decision: PolicyDecision, trigger: ConversionTrigger) -> String {
        if let rule = decision.ruleIndex { return "rule \(rule)" }
        for limit in ["max_shared_bytes", "max_conversions_per_second"] where decision.reason.hasPrefix(limit) {
            return limit
        }
        return "default \(trigger.rawValue)"
    }
}
