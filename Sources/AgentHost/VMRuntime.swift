import KVM
import MemoryModel
import Platform
import VMM

/// Why a VM did not do what it was asked (its state forbids it, or its process could not be reached).
public struct VMRuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A VM as the API and the metrics read it: one consistent look, taken at once.
public struct VMSnapshot: Sendable {
    public var lifecycle: VMLifecycle
    /// The state as recorded: a `VMState`, or `lost` for a VM whose agent died without recording its end.
    public var state: String
    public var backend: String
    public var pageStates: PageStateMap
    public var statistics: ConversionStatistics
    public var exitCounts: [(kind: String, count: UInt64)]
    public var consoleBytes: Int
    /// The VM process (nil: inside the agent, or no longer running).
    public var pid: Int32?
    /// The policy version the VM enforces.
    public var policyVersion: String?
    /// Records that waited for room in the VM's ring, and how long in all (nil: the VM has no ring).
    public var ringWaits: UInt64?
    public var ringWaitNanos: UInt64?
    /// Connections its VM process refused or ended (another user's, a bad or oversized message).
    public var refusedConnections: Int?
    /// For a VM read from the store after a restart: its recorded conversions by decision and faults.
    public var recorded: (conversions: [String: Int], faults: Int)?

    /// Conversions by decision (applied, denied, invalid, failed) and memory faults.
    public var conversionsByDecision: [String: Int] {
        if let recorded { return recorded.conversions }
        var out: [String: Int] = [:]
        for (key, count) in statistics.conversions { out[key.decision.rawValue, default: 0] += count }
        return out
    }
    public var memoryFaults: Int { recorded?.faults ?? statistics.faults.values.reduce(0, +) }
}

/// Where a VM runs: inside the agent (`VirtualMachine`), in a process of its own
/// (`ProcessRuntime`), or nowhere any more (`StoredRuntime`, read from the store after a restart).
public protocol VMRuntime: AnyObject, Sendable {
    var snapshot: VMSnapshot { get }
    var lifecycle: VMLifecycle { get }
    /// True when the VM's start, pauses and end reach the store by themselves (through a VM process's ring).
    var recordsItsLifecycle: Bool { get }
    func console(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int)
    func start() throws(VMRuntimeError)
    func pause() throws(VMRuntimeError)
    func resume() throws(VMRuntimeError)
    func stop(reason: String)
    func fail(reason: String)
    /// The policy changed (a VM inside the agent shares its `PolicyStore` and needs nothing).
    func policyChanged(_ policy: VersionedPolicy)
    /// Returns false if `timeout` passed first.
    func waitUntilFinished(timeout: Duration?) -> Bool
    /// The VM ended and its end is recorded: give back what it held.
    func release(logger: @Sendable (String) -> Void)
}

/// A VM inside the agent's process (`memgate-agent run`, `--no-record`, tests).
final class InProcessRuntime: VMRuntime {
    let machine: VirtualMachine

    init(_ machine: VirtualMachine) { self.machine = machine }

    var snapshot: VMSnapshot {
        let lifecycle = machine.lifecycle
        return VMSnapshot(
            lifecycle: lifecycle, state: lifecycle.state.rawValue, backend: machine.backendKind.rawValue,
            pageStates: machine.pageStates, statistics: machine.statistics, exitCounts: machine.exitCounts,
            consoleBytes: machine.consoleBytes, pid: nil, policyVersion: nil)
    }
    var lifecycle: VMLifecycle { machine.lifecycle }
    var recordsItsLifecycle: Bool { false }
    func console(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) { machine.console(from: offset) }

    func start() throws(VMRuntimeError) {
        do throws(LifecycleError) { try machine.start() } catch { throw VMRuntimeError(error.description) }
    }

    func pause() throws(VMRuntimeError) {
        do throws(LifecycleError) { try machine.pause() } catch { throw VMRuntimeError(error.description) }
    }

    func resume() throws(VMRuntimeError) {
        do throws(LifecycleError) { try machine.resume() } catch { throw VMRuntimeError(error.description) }
    }

    func stop(reason: String) { machine.stop(reason: reason) }
    func fail(reason: String) { machine.fail(reason: reason) }
    func policyChanged(_ policy: VersionedPolicy) {}
    func waitUntilFinished(timeout: Duration?) -> Bool { machine.waitUntilFinished(timeout: timeout) }

    func release(logger: @Sendable (String) -> Void) {
        do throws(KVMError) {
            try machine.releaseMemory()
        } catch {
            logger("could not free an ended VM's memory: \(error)")
        }
    }
}

/// A VM that ended before this agent started: what the store says of it.
final class StoredRuntime: VMRuntime {
    let stored: StoredVMView

    struct StoredVMView: Sendable {
        var lifecycle: VMLifecycle
        var state: String
        var backend: String
        var pageStates: PageStateMap
        var statistics: ConversionStatistics
        var conversions: [String: Int]
        var faults: Int
    }

    init(_ stored: StoredVMView) { self.stored = stored }

    var snapshot: VMSnapshot {
        VMSnapshot(
            lifecycle: stored.lifecycle, state: stored.state, backend: stored.backend, pageStates: stored.pageStates,
            statistics: stored.statistics, exitCounts: [], consoleBytes: 0, pid: nil, policyVersion: nil,
            recorded: (stored.conversions, stored.faults))
    }
    var lifecycle: VMLifecycle { stored.lifecycle }
    var recordsItsLifecycle: Bool { true }
    func console(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) { (offset, [], 0) }
    func start() throws(VMRuntimeError) { throw VMRuntimeError("cannot start a VM that is \(stored.state)") }
    func pause() throws(VMRuntimeError) { throw VMRuntimeError("cannot pause a VM that is \(stored.state)") }
    func resume() throws(VMRuntimeError) { throw VMRuntimeError("cannot resume a VM that is \(stored.state)") }
    func stop(reason: String) {}
    func fail(reason: String) {}
    func policyChanged(_ policy: VersionedPolicy) {}
    func waitUntilFinished(timeout: Duration?) -> Bool { true }
    func release(logger: @Sendable (String) -> Void) {}
}
