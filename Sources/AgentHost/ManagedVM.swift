import EventStore
import Foundation
import MemoryModel
import Synchronization
import VMM

/// A VM owned by an `AgentHost`: the machine, what it was created from, and
/// whether its end has been recorded (exactly once, on every path).
public final class ManagedVM: Sendable {
    public let id: Int64
    public let name: String
    public let imageName: String
    public let memoryMib: UInt64
    public let vcpus: Int
    public let commandLine: String
    public let labels: [String: String]
    public let initialState: PageState
    public let createdNanos: UInt64
    public let timeout: Duration?
    /// Where the VM runs: inside the agent, in its own process, or (ended before a restart) nowhere.
    public let runtime: VMRuntime
    /// The VM inside the agent's process, when it runs there.
    public var machine: VirtualMachine? { (runtime as? InProcessRuntime)?.machine }
    /// The VM's process, when it has one.
    public var pid: Int32? { (runtime as? ProcessRuntime)?.pid }

    private struct Times {
        var startedNanos: UInt64?
        var endedNanos: UInt64?
        var timedOut = false
    }
    private let times = Mutex(Times())
    private let ended = NSCondition()

    init(id: Int64, spec: VMSpec, createdNanos: UInt64, runtime: VMRuntime) {
        self.id = id
        name = spec.name
        imageName = spec.imageName
        memoryMib = spec.memoryMib
        vcpus = spec.vcpus
        commandLine = spec.commandLine
        labels = spec.labels
        initialState = spec.initialState
        self.createdNanos = createdNanos
        timeout = spec.timeout
        self.runtime = runtime
    }

    /// A VM this agent found in the store: ended before it started, or adopted with its process.
    init(stored: StoredVM, runtime: VMRuntime) {
        id = stored.id
        name = stored.name
        imageName = stored.image
        memoryMib = stored.memoryBytes >> 20
        vcpus = stored.vcpus
        commandLine = stored.commandLine
        labels = stored.labels
        initialState = stored.initialState
        createdNanos = stored.createdNanos
        timeout = stored.timeoutMillis.map { Duration.milliseconds($0) }
        self.runtime = runtime
        times.withLock {
            $0.startedNanos = stored.startedNanos
            $0.endedNanos = stored.endedNanos
        }
        if stored.endedNanos != nil { setRecorded() }
    }

    /// What the VM looks like now (one request to its process, if it has one).
    public var snapshot: VMSnapshot { runtime.snapshot }

    public var startedNanos: UInt64? { times.withLock { $0.startedNanos } }
    public var endedNanos: UInt64? { times.withLock { $0.endedNanos } }
    /// True when the agent stopped it because its timeout passed.
    public var timedOut: Bool { times.withLock { $0.timedOut } }
    public var lifecycle: VMLifecycle { runtime.lifecycle }

    func markStarted(at nanos: UInt64) { times.withLock { $0.startedNanos = nanos } }
    func markTimedOut() { times.withLock { $0.timedOut = true } }

    /// Claims the right to record the end; true for exactly one caller.
    func claimEnd(at nanos: UInt64) -> Bool {
        times.withLock { times in
            guard times.endedNanos == nil else { return false }
            times.endedNanos = nanos
            return true
        }
    }

    /// Wakes `waitUntilRecorded` once the end is durable.
    func endRecorded() {
        ended.lock()
        ended.broadcast()
        ended.unlock()
    }

    /// Blocks until the VM ended and its end was recorded.
    public func waitUntilRecorded() {
        ended.lock()
        defer { ended.unlock() }
        while !isRecorded { ended.wait() }
    }

    private let recorded = Atomic<Bool>(false)
    var isRecorded: Bool { recorded.load(ordering: .acquiring) }
    func setRecorded() { recorded.store(true, ordering: .releasing) }
}
