/// Where a VM is in its life.
public enum VMState: String, Sendable, Codable, CaseIterable {
    case created, running, paused, stopped, crashed, failed
    /// A memory fault could not be resolved (denied by policy, or no backing): only this VM stops.
    case faulted

    public var isTerminal: Bool { self == .stopped || self == .crashed || self == .failed || self == .faulted }
}

/// What can happen to a VM.
public enum VMTransition: Sendable, Equatable {
    case start
    case pause
    case resume
    /// The operator (or a timeout) stopped it.
    case stop(reason: String)
    /// The guest wrote the exit port.
    case guestExited(status: Int32)
    /// Every vCPU halted with interrupts off: nothing can ever run again.
    case allVCPUsHalted
    /// A triple fault or other guest-caused death.
    case crash(reason: String)
    /// Something MemGate could not handle (an unhandled exit, a KVM error).
    case fail(reason: String)
    /// A memory fault the policy denied or no backing can satisfy.
    case fault(reason: String)

    var name: String {
        switch self {
        case .start: "start"
        case .pause: "pause"
        case .resume: "resume"
        case .stop: "stop"
        case .guestExited: "guest exit"
        case .allVCPUsHalted: "all vCPUs halted"
        case .crash: "crash"
        case .fail: "failure"
        case .fault: "memory fault"
        }
    }
}

public struct LifecycleError: Error, Equatable, Sendable, CustomStringConvertible {
    public let state: VMState
    public let event: String
    public var description: String { "cannot \(event) a VM that is \(state.rawValue)" }
}

/// The VM state machine: `created → running ⇄ paused → stopped | crashed | failed | faulted`.
/// Pure logic; `VirtualMachine` applies events under its lock.
public struct VMLifecycle: Sendable, Equatable {
    public private(set) var state: VMState = .created
    /// Why the VM ended (set with the terminal state).
    public private(set) var reason: String?
    /// The guest's exit status, when it exited through the exit port.
    public private(set) var exitStatus: Int32?

    public init() {}

    /// A lifecycle as another process reported it (a VM process, or the store after a restart).
    public init(state: VMState, reason: String?, exitStatus: Int32?) {
        self.state = state
        self.reason = reason
        self.exitStatus = exitStatus
    }

    public mutating func apply(_ event: VMTransition) throws(LifecycleError) {
        let next: VMState
        switch (state, event) {
        case (.created, .start): next = .running
        case (.running, .pause): next = .paused
        case (.paused, .resume): next = .running
        case (.created, .stop(let why)), (.running, .stop(let why)), (.paused, .stop(let why)):
            next = .stopped
            reason = why
        case (.running, .guestExited(let status)), (.paused, .guestExited(let status)):
            next = .stopped
            exitStatus = status
            reason = "guest exited with status \(status)"
        case (.running, .allVCPUsHalted), (.paused, .allVCPUsHalted):
            next = .stopped
            reason = "every vCPU halted without exiting"
        case (.running, .crash(let why)), (.paused, .crash(let why)):
            next = .crashed
            reason = why
        case (.created, .fail(let why)), (.running, .fail(let why)), (.paused, .fail(let why)):
            next = .failed
            reason = why
        case (.running, .fault(let why)), (.paused, .fault(let why)):
            next = .faulted
            reason = why
        default:
            throw LifecycleError(state: state, event: event.name)
        }
        state = next
    }
}
