import CLinux
import EventStore
import Foundation
import Glibc
import MemoryModel
import Synchronization
import VMM
import VMProcess

/// A VM in a process of its own, seen from the agent: requests go over its socket,
/// its records come through its ring (`RingDrain`), and its end is known by its
/// pidfd. If the process dies without its last record, the agent records the end
/// as `failed` with the signal that killed it.
final class ProcessRuntime: VMRuntime {
    let vmID: Int64
    let client: VMProcessClient
    let pidfd: Int32
    /// True when this agent started the process (it can reap it and read how it died).
    let isChild: Bool
    let backend: String
    let dataRAM: PageRange

    private struct State {
        var lastStatus: VMStatusWire?
        var final:
            (
                lifecycle: VMLifecycle, statistics: ConversionStatistics, exits: [(kind: String, count: UInt64)],
                runs: PageStateMap,
                console: [UInt8], consoleBytes: Int, recorded: (conversions: [String: Int], faults: Int)?,
                ringWaits: (count: UInt64, nanos: UInt64)
            )?
        var policyVersion: String?
        var killReason: String?
    }
    private let state: Mutex<State>
    private let finished = NSCondition()
    private let isFinished = Atomic<Bool>(false)

    init(
        vmID: Int64, client: VMProcessClient, pidfd: Int32, isChild: Bool, backend: String, dataRAM: PageRange,
        status: VMStatusWire?
    ) {
        self.vmID = vmID
        self.client = client
        self.pidfd = pidfd
        self.isChild = isChild
        self.backend = backend
        self.dataRAM = dataRAM
        state = Mutex(State(lastStatus: status, policyVersion: status?.policyVersion))
    }

    deinit { close(pidfd) }

    var pid: Int32 { client.pid }

    var snapshot: VMSnapshot {
        if let final = finalSnapshot { return final }
        if !isFinished.load(ordering: .acquiring) {
            if let reply = try? client.call(VMRequest(.status)), let status = reply.status {
                state.withLock {
                    $0.lastStatus = status
                    $0.policyVersion = status.policyVersion
                }
                // Its guest has ended and the process is about to: answer with the end as recorded.
                if VMState(rawValue: status.state)?.isTerminal == true, waitUntilFinished(timeout: Self.endGrace),
                    let final = finalSnapshot
                {
                    return final
                }
            } else if waitUntilFinished(timeout: Self.endGrace), let final = finalSnapshot {
                // No answer: the process is gone or going, and its end is being recorded.
                return final
            }
        }
        let status = state.withLock { $0.lastStatus }
        let lifecycle =
            status.map {
                VMLifecycle(state: VMState(rawValue: $0.state) ?? .failed, reason: $0.reason, exitStatus: $0.exitStatus)
            }
            ?? VMLifecycle()
        return VMSnapshot(
            lifecycle: lifecycle, state: lifecycle.state.rawValue, backend: backend,
            pageStates: status?.pageStates ?? PageStateMap(bounds: dataRAM, initial: .private),
            statistics: status?.statistics.statistics ?? ConversionStatistics(),
            exitCounts: status?.statistics.exitCounts ?? [],
            consoleBytes: status?.consoleBytes ?? 0, pid: pid, policyVersion: status?.policyVersion,
            ringWaits: status?.ringWaits ?? 0, ringWaitNanos: status?.ringWaitNanos ?? 0,
            refusedConnections: status?.refusedConnections)
    }

    /// The VM as it ended, once its process is gone and its ring committed.
    private var finalSnapshot: VMSnapshot? {
        guard let final = state.withLock({ $0.final }) else { return nil }
        return VMSnapshot(
            lifecycle: final.lifecycle, state: final.lifecycle.state.rawValue, backend: backend, pageStates: final.runs,
            statistics: final.statistics, exitCounts: final.exits, consoleBytes: final.consoleBytes, pid: nil,
            policyVersion: state.withLock { $0.policyVersion }, ringWaits: final.ringWaits.count,
            ringWaitNanos: final.ringWaits.nanos, recorded: final.recorded)
    }

    var lifecycle: VMLifecycle { snapshot.lifecycle }
    var recordsItsLifecycle: Bool { true }

    func console(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) {
        if let final = state.withLock({ $0.final }) {
            let start = max(offset, final.consoleBytes - final.console.count)
            let skip = start - (final.consoleBytes - final.console.count)
            let bytes = skip < final.console.count ? Array(final.console[skip...]) : []
            return (min(start, final.consoleBytes), bytes, max(0, start - offset))
        }
        guard let reply = try? client.call(VMRequest(.console, after: offset)), let chunk = reply.console else {
            // The process is gone or going: its last record holds the console's end.
            return waitUntilFinished(timeout: Self.endGrace) ? console(from: offset) : (offset, [], 0)
        }
        return (chunk.start, [UInt8](chunk.data), chunk.dropped)
    }

    /// How long a read waits for a VM process that is ending to be drained and recorded.
    static let endGrace: Duration = .seconds(5)

    private func command(_ request: VMRequest) throws(VMRuntimeError) {
        let reply: VMReply
        do {
            reply = try client.call(request)
        } catch {
            throw VMRuntimeError("the VM process (pid \(pid)) did not answer: \(error)")
        }
        guard reply.ok else { throw VMRuntimeError(reply.error ?? "the VM process refused") }
        if let status = reply.status {
            state.withLock {
                $0.lastStatus = status
                $0.policyVersion = status.policyVersion
            }
        }
    }

    func start() throws(VMRuntimeError) { try command(VMRequest(.start)) }
    func pause() throws(VMRuntimeError) { try command(VMRequest(.pause)) }
    func resume() throws(VMRuntimeError) { try command(VMRequest(.resume)) }

    func stop(reason: String) {
        guard !isFinished.load(ordering: .acquiring) else { return }
        do throws(VMRuntimeError) {
            try command(VMRequest(.stop, reason: reason))
        } catch {
            // A process that cannot be asked is ended: a stop must stop.
            kill(reason: "\(reason); its process (pid \(pid)) did not answer, so it was killed")
        }
    }

    func fail(reason: String) { stop(reason: reason) }

    func policyChanged(_ policy: VersionedPolicy) {
        guard !isFinished.load(ordering: .acquiring) else { return }
        if (try? command(VMRequest(.policy, policy: String(decoding: policy.document, as: UTF8.self)))) != nil {
            state.withLock { $0.policyVersion = policy.version }
        }
    }

    /// What the VM process said of itself in its handshake: the policy version it enforces.
    func heard(policyVersion: String?) {
        guard let policyVersion else { return }
        state.withLock { $0.policyVersion = policyVersion }
    }

    /// Ends a VM process that cannot be trusted or reached; `reason` is recorded as its end.
    func kill(reason: String) {
        state.withLock { $0.killReason = reason }
        _ = clinux_pidfd_signal(pidfd, SIGKILL)
    }

    /// Why this agent killed the process, if it did.
    var killReason: String? { state.withLock { $0.killReason } }

    /// The policy version the VM enforces, as last heard.
    var policyVersion: String? { state.withLock { $0.policyVersion } }

    func waitUntilFinished(timeout: Duration?) -> Bool {
        let deadline = timeout.map {
            Date().addingTimeInterval(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)
        }
        finished.lock()
        defer { finished.unlock() }
        while !isFinished.load(ordering: .acquiring) {
            if let deadline {
                if !finished.wait(until: deadline) { return isFinished.load(ordering: .acquiring) }
            } else {
                finished.wait()
            }
        }
        return true
    }

    /// The process is gone and its ring drained: `ending` is its last record, if it wrote one.
    func markFinished(
        ending: VMEnding?, failure: String?, recorded: (conversions: [String: Int], faults: Int)?,
        ringWaits: (count: UInt64, nanos: UInt64)
    ) {
        let status = state.withLock { $0.lastStatus }
        let lifecycle: VMLifecycle
        var statistics = status?.statistics.statistics ?? ConversionStatistics()
        var exits = status?.statistics.exitCounts ?? []
        var runs = status?.pageStates ?? PageStateMap(bounds: dataRAM, initial: .private)
        var console: [UInt8] = []
        var consoleBytes = status?.consoleBytes ?? 0
        if let ending {
            lifecycle = VMLifecycle(
                state: VMState(rawValue: ending.state) ?? .stopped, reason: ending.reason, exitStatus: ending.exitStatus
            )
            if let wire = WireCoding.decode(VMStatisticsWire.self, from: Data(ending.statistics)) {
                statistics = wire.statistics
                exits = wire.exitCounts
            }
            if !ending.runs.isEmpty { runs = PageStateMap(bounds: dataRAM, initial: .private, runs: ending.runs) }
            console = ending.consoleTail
            consoleBytes = ending.consoleBytes
        } else {
            lifecycle = VMLifecycle(state: .failed, reason: failure, exitStatus: nil)
        }
        state.withLock { $0.final = (lifecycle, statistics, exits, runs, console, consoleBytes, recorded, ringWaits) }
        client.close()
        finished.lock()
        isFinished.store(true, ordering: .releasing)
        finished.broadcast()
        finished.unlock()
    }

    func release(logger: @Sendable (String) -> Void) {}

    /// Blocks until the process ends; returns how (exit code, or signal) when it was our child.
    func waitForExit() -> (code: Int32, signal: Int32)? {
        while clinux_poll_readable(pidfd, -1) != 1 {
            if errno != EINTR { break }
        }
        guard isChild else { return nil }
        var code: Int32 = 0, signal: Int32 = 0
        guard clinux_pidfd_reap(pidfd, &code, &signal) == 1 else { return nil }
        return (code, signal)
    }
}
