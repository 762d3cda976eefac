import CLinux
import CNet
import EventStore
import Foundation
import Glibc
import KVM
import Logging
import MemoryModel
import Platform
import Synchronization
import VMM

/// The VM process (`memgate-agent vm process`): owns one VM's KVM descriptors, vCPU
/// threads, conversion engine and policy; records into its ring; answers the agent on
/// its socket. It outlives any agent: with none connected, the guest runs on and its
/// records wait in the ring. When the guest ends, its last record says how, and the
/// process exits.
public final class VMProcessServer: @unchecked Sendable {
    let spec: VMProcessSpec
    let machine: VirtualMachine
    let sink: RingEventSink
    let policies: PolicyStore
    let runDirectory: RunDirectory
    let logger: Logger
    private let listener: Int32
    private struct State {
        var started = false
        var finishing = false
        var connections = 0
        /// Requests being handled or answered: the process does not exit under one.
        var inFlight = 0
        /// The ready line is written: a guest that ends at once must not take the process down before it.
        var readyReported = false
    }
    private let state = Mutex(State())
    /// Connections ended for a bad or oversized message, or refused for their credentials.
    let refused = Atomic<Int>(0)

    /// Why the VM process could not start: written to its ready pipe for the agent.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Builds the VM and binds its socket; nothing runs yet.
    public init(spec: VMProcessSpec, image: [UInt8], runDirectory: RunDirectory, system: KVM.System, logger: Logger)
        throws(StartError)
    {
        self.spec = spec
        self.runDirectory = runDirectory
        self.logger = logger
        let policy: VersionedPolicy
        do { policy = try VersionedPolicy(document: Array(spec.policy.utf8)) } catch {
            throw StartError(description: "policy: \(error)")
        }
        policies = PolicyStore(policy)
        guard let initial = PageState(rawValue: spec.initialState) else {
            throw StartError(description: "initial_state: \(spec.initialState)")
        }
        let parsedImage: GuestImage
        do {
            parsedImage = try ELFLoader.parse(image, loadable: BootLayout.imageBase..<spec.memoryBytes)
        } catch {
            throw StartError(description: "image: \(error)")
        }
        let ring: VMRing
        do {
            ring = try VMRing.create(path: runDirectory.ringPath(spec.vmID), vmID: spec.vmID, capacity: spec.ringBytes)
        } catch {
            throw StartError(description: "ring: \(error)")
        }
        sink = RingEventSink(ring: ring)
        var configuration = VMConfiguration(name: spec.name)
        configuration.id = spec.vmID
        configuration.memoryBytes = spec.memoryBytes
        configuration.vcpuCount = spec.vcpus
        configuration.commandLine = spec.commandLine
        configuration.initialState = initial
        configuration.backend = spec.backend.flatMap(BackendKind.init(rawValue:))
        configuration.maxRuns = spec.maxRuns
        configuration.recordingBudget = spec.recordingBudget
        configuration.aliasMechanism = spec.aliasMechanism.flatMap(AliasMechanism.init(rawValue:))
        do {
            machine = try VirtualMachine(
                system: system, configuration: configuration, image: parsedImage, logger: logger,
                policies: policies, events: sink)
        } catch {
            ring.unlink()
            throw StartError(description: "\(error)")
        }
        let socket = runDirectory.socketPath(spec.vmID)
        unlink(socket)
        listener = cnet_listen_unix(socket, 8, 0o600)
        guard listener >= 0 else {
            let code = errno
            ring.unlink()
            throw StartError(description: "listen on \(socket): \(String(cString: strerror(code)))")
        }
    }

    /// The ready line is written (a guest that already ended may now end the process).
    public func readyWasReported() { state.withLock { $0.readyReported = true } }

    /// What the agent learns from the ready pipe.
    public var ready: VMReady {
        let bounds = machine.pageStates.bounds
        return VMReady(
            pid: getpid(), backend: machine.backendKind.rawValue, dataRAMStart: bounds.start, dataRAMEnd: bounds.end)
    }

    /// Serves the agent until the guest ends; never returns (the process exits after the last record).
    public func serve() -> Never {
        while true {
            guard clinux_poll_readable(listener, -1) == 1 else { continue }
            let fd = cnet_accept(listener)
            guard fd >= 0 else { continue }
            let channel = VMChannel(fd: fd, timeoutMillis: 600_000)
            // Only the agent's user: anyone else is refused before a byte is read.
            guard let peer = channel.peer, peer.uid == geteuid() else {
                refused.wrappingAdd(1, ordering: .relaxed)
                logger.warning(
                    "refused a connection from another user",
                    metadata: ["uid": "\(channel.peer.map { "\($0.uid)" } ?? "?")"])
                channel.close()
                continue
            }
            let admitted = state.withLock { state -> Bool in
                guard state.connections < 4 else { return false }
                state.connections += 1
                return true
            }
            guard admitted else {
                channel.close()
                continue
            }
            let thread = Thread { [self] in
                converse(on: channel)
                state.withLock { $0.connections -= 1 }
            }
            thread.name = "memgate-vm-conn"
            thread.start()
        }
    }

    private func converse(on channel: VMChannel) {
        defer { channel.close() }
        var greeted = false
        while true {
            let request: VMRequest?
            do {
                request = try channel.receive(VMRequest.self)
            } catch {
                refused.wrappingAdd(1, ordering: .relaxed)
                logger.warning("ended a connection", metadata: ["error": "\(error)"])
                return
            }
            guard let request else { return }
            if !greeted && request.op != .hello {
                try? channel.send(VMReply(ok: false, error: "the first message must be hello"))
                return
            }
            state.withLock { $0.inFlight += 1 }
            let reply = handle(request)
            greeted = greeted || (request.op == .hello && reply.ok)
            let sent = (try? channel.send(reply)) != nil
            state.withLock { $0.inFlight -= 1 }
            guard sent else { return }
            if request.op == .hello && !reply.ok { return }
        }
    }

    func handle(_ request: VMRequest) -> VMReply {
        switch request.op {
        case .hello:
            guard request.protocolVersion == VMWire.protocolVersion else {
                return VMReply(
                    ok: false,
                    error:
                        "protocol version \(request.protocolVersion.map(String.init) ?? "none") is not this VM process's \(VMWire.protocolVersion); stop the VM with the binary that started it, or run that agent"
                )
            }
            var reply = VMReply(ok: true)
            reply.protocolVersion = VMWire.protocolVersion
            reply.vmID = spec.vmID
            reply.pid = getpid()
            // Nothing that waits for the engine: a guest waiting for room in a full ring holds it.
            reply.state = machine.lifecycle.state.rawValue
            reply.policyVersion = policies.policy.version
            return reply
        case .start:
            if let refusal = startGuest() { return VMReply(ok: false, error: refusal) }
        case .pause:
            do { try machine.pause() } catch { return VMReply(ok: false, error: error.description) }
            sink.recordLifecycle(.paused, atNanos: MonotonicClock.wallNanos())
        case .resume:
            do { try machine.resume() } catch { return VMReply(ok: false, error: error.description) }
            sink.recordLifecycle(.resumed, atNanos: MonotonicClock.wallNanos())
        case .stop:
            let started = state.withLock { $0.started }
            machine.stop(reason: request.reason ?? "stopped")
            // A vCPU waiting for room in a full ring would never see the stop.
            sink.abandonWaits()
            if !started {
                let thread = Thread { [self] in finish() }
                thread.start()
            }
        case .policy:
            guard let document = request.policy else { return VMReply(ok: false, error: "policy: no document") }
            do {
                policies.replace(with: try VersionedPolicy(document: Array(document.utf8)))
            } catch {
                return VMReply(ok: false, error: "policy: \(error)")
            }
        case .console:
            let chunk = machine.console(from: max(request.after ?? 0, 0))
            var reply = VMReply(ok: true)
            reply.console = VMConsoleWire(start: chunk.start, data: Data(chunk.bytes), dropped: chunk.dropped)
            return reply
        case .status:
            break
        }
        var reply = VMReply(ok: true)
        reply.status = status
        return reply
    }

    /// Starts the guest (once); the reason it cannot, if it cannot.
    public func startGuest() -> String? {
        guard machine.lifecycle.state == .created else {
            return "cannot start a VM that is \(machine.lifecycle.state.rawValue)"
        }
        // Before the first guest instruction, so the start precedes every record of the guest's.
        sink.recordLifecycle(.started, atNanos: MonotonicClock.wallNanos())
        do {
            try machine.start()
        } catch {
            return error.description
        }
        state.withLock { $0.started = true }
        let watcher = Thread { [self] in
            _ = machine.waitUntilFinished()
            finish()
        }
        watcher.name = "memgate-vm-watch"
        watcher.start()
        return nil
    }

    var status: VMStatusWire {
        let lifecycle = machine.lifecycle
        let states = machine.pageStates
        let waits = sink.ring.fullWaits
        return VMStatusWire(
            state: lifecycle.state.rawValue, reason: lifecycle.reason, exitStatus: lifecycle.exitStatus,
            backend: machine.backendKind.rawValue, policyVersion: policies.policy.version,
            consoleBytes: machine.consoleBytes,
            dataRAMStart: states.bounds.start, dataRAMEnd: states.bounds.end,
            runs: states.runs.map { VMRunWire(start: $0.range.start, end: $0.range.end, shared: $0.state == .shared) },
            statistics: VMStatisticsWire(machine.statistics, exits: machine.exitCounts), ringWaits: waits.count,
            ringWaitNanos: waits.nanos,
            refusedConnections: refused.load(ordering: .relaxed))
    }

    /// The guest ended (or was stopped before it started): the last record, then the process ends.
    private func finish() {
        guard
            state.withLock({ state -> Bool in
                defer { state.finishing = true }
                return !state.finishing
            })
        else { return }
        machine.flushAggregates()
        let lifecycle = machine.lifecycle
        let final = lifecycle.state.isTerminal ? lifecycle.state.rawValue : VMState.stopped.rawValue
        let console = machine.console(from: max(0, machine.consoleBytes - (16 << 10)))
        let statistics = [UInt8](WireCoding.encode(VMStatisticsWire(machine.statistics, exits: machine.exitCounts)))
        var runs = machine.pageStates.runs.map { (start: $0.range.start, end: $0.range.end, state: $0.state) }
        // A layout too large for one record is left to the store's last one (never seen in practice: runs are bounded).
        if runs.count * 17 > sink.ring.capacity / 4 { runs = [] }
        let ending = VMEnding(
            state: final, reason: lifecycle.reason, exitStatus: lifecycle.exitStatus, runs: runs,
            statistics: statistics, consoleTail: console.bytes, consoleBytes: machine.consoleBytes)
        let recorded = sink.recordEnd(ending)
        logger.info(
            "VM ended",
            metadata: ["state": "\(final)", "reason": "\(lifecycle.reason ?? "")", "recorded": "\(recorded)"])
        unlink(runDirectory.socketPath(spec.vmID))
        // The stop that ended the guest gets its answer, and the agent its ready line, before the process
        // goes (bounded: a peer that does not read).
        var waited = 0
        while waited < 10_000 && state.withLock({ $0.inFlight > 0 || !$0.readyReported }) {
            usleep(1000)
            waited += 1
        }
        exit(0)
    }
}
