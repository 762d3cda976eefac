import CLinux
import EventStore
import Foundation
import Glibc
import KVM
import Logging
import MemoryModel
import Platform
import Synchronization
import VMM
import VMProcess

/// How `serve` runs VMs in processes of their own.
public struct VMProcessOptions: Sendable {
    public var runDirectory: RunDirectory
    public var spawner: VMSpawner
    /// The VM processes' log level (their log is `vm-ID.log` in the run directory).
    public var logLevel: String
    /// Bytes of each VM's ring: how long a VM converts with no agent draining it before its conversions wait.
    public var ringBytes: Int

    public init(
        runDirectory: RunDirectory, executable: String = VMSpawner.currentExecutable, logLevel: String = "info",
        ringBytes: Int = VMRing.defaultCapacity
    ) {
        self.runDirectory = runDirectory
        spawner = VMSpawner(executable: executable, runDirectory: runDirectory)
        self.logLevel = logLevel
        self.ringBytes = ringBytes
    }
}

/// What `adopt` found in the store and the run directory.
public struct AdoptionReport: Sendable, Equatable {
    /// VMs whose processes answered and now belong to this agent.
    public var adopted: [Int64] = []
    /// VMs whose process was gone (their rings drained, their ends recorded).
    public var closed: [Int64] = []
    /// VMs that ended before this agent started, listed from the store.
    public var ended: [Int64] = []
    /// Files in the run directory refused (a link, another owner) or left by no known VM.
    public var refused: [String] = []
}

extension AgentHost {
    // MARK: Creation, by where the VM runs

    func createInProcess(_ spec: VMSpec, id vmID: Int64, image: GuestImage) throws(AgentHostError) -> ManagedVM {
        let machine: VirtualMachine
        do {
            machine = try VirtualMachine(
                system: system, configuration: configuration(spec, id: vmID), image: image, logger: logger,
                policies: policies, events: store ?? memorySink, consoleStream: spec.consoleStream)
        } catch {
            throw .creationFailed(error.description)
        }
        let created = MonotonicClock.wallNanos()
        try register(
            spec, id: vmID, backend: machine.backendKind.rawValue, dataRAM: machine.pageStates.bounds, pid: nil,
            created: created)
        return ManagedVM(id: vmID, spec: spec, createdNanos: created, runtime: InProcessRuntime(machine))
    }

    func configuration(_ spec: VMSpec, id vmID: Int64) -> VMConfiguration {
        var configuration = VMConfiguration(name: spec.name)
        configuration.id = vmID
        configuration.memoryBytes = spec.memoryMib << 20
        configuration.vcpuCount = spec.vcpus
        configuration.commandLine = spec.commandLine
        configuration.initialState = spec.initialState
        configuration.backend = spec.backend
        configuration.maxRuns = spec.maxRuns ?? runLimit
        configuration.recordingBudget = defaults.recordingBudget
        configuration.aliasMechanism = spec.aliasMechanism ?? defaults.aliasMechanism
        return configuration
    }

    private func register(
        _ spec: VMSpec, id vmID: Int64, backend: String, dataRAM: PageRange, pid: Int32?, created: UInt64
    ) throws(AgentHostError) {
        var registration = VMRegistration(
            name: spec.name, labels: spec.labels, memoryBytes: spec.memoryMib << 20, vcpus: spec.vcpus,
            backend: backend, dataRAM: dataRAM, initialState: spec.initialState)
        registration.image = spec.imageName
        registration.commandLine = spec.commandLine
        registration.timeoutMillis = spec.timeout.map {
            $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000
        }
        registration.pid = pid
        do {
            try store?.register(registration, id: vmID, createdNanos: created)
        } catch {
            throw .store(error)
        }
    }

    func createProcess(_ spec: VMSpec, id vmID: Int64, options: VMProcessOptions, start: Bool) throws(AgentHostError)
        -> ManagedVM
    {
        let configuration = configuration(spec, id: vmID)
        // One look at the policy: the VM gets this document and is known to enforce this version.
        let policy = policies.policy
        var processSpec = VMProcessSpec(
            vmID: vmID, name: spec.name, memoryBytes: configuration.memoryBytes, vcpus: spec.vcpus,
            commandLine: spec.commandLine,
            initialState: spec.initialState.rawValue, backend: spec.backend?.rawValue, maxRuns: configuration.maxRuns,
            recordingBudget: configuration.recordingBudget, aliasMechanism: configuration.aliasMechanism?.rawValue,
            policy: String(decoding: policy.document, as: UTF8.self))
        processSpec.ringBytes = options.ringBytes
        processSpec.startAtOnce = start
        let spawned: SpawnedVM
        do throws(VMSpawnError) {
            if let fromSpare = spawnFromSpare(processSpec, image: spec.image, options: options) {
                spawned = fromSpare
            } else {
                spawned = try options.spawner.spawn(processSpec, image: spec.image, logLevel: options.logLevel)
            }
        } catch {
            options.runDirectory.removeFiles(of: vmID, keepLog: true)
            throw .creationFailed(error.description)
        }
        let dataRAM = PageRange(start: spawned.ready.dataRAMStart ?? 0, end: spawned.ready.dataRAMEnd ?? 0)
        let backend = spawned.ready.backend ?? BackendKind.alias.rawValue
        let created = MonotonicClock.wallNanos()
        let client = VMProcessClient(runDirectory: options.runDirectory, vmID: vmID, pid: spawned.pid)
        let runtime = ProcessRuntime(
            vmID: vmID, client: client, pidfd: spawned.pidfd, isChild: true, backend: backend, dataRAM: dataRAM,
            status: nil)
        runtime.heard(policyVersion: policy.version)
        do throws(AgentHostError) {
            try register(spec, id: vmID, backend: backend, dataRAM: dataRAM, pid: spawned.pid, created: created)
        } catch {
            runtime.stop(reason: "its registration failed")
            _ = runtime.waitForExit()
            options.runDirectory.removeFiles(of: vmID)
            throw error
        }
        let vm = ManagedVM(id: vmID, spec: spec, createdNanos: created, runtime: runtime)
        let ring: VMRing
        do throws(EventRingError) {
            ring = try VMRing.open(path: options.runDirectory.ringPath(vmID), vmID: vmID)
        } catch {
            runtime.stop(reason: "its ring could not be opened")
            throw .creationFailed("the VM process's ring: \(error)")
        }
        follow(vm, runtime: runtime, ring: ring, pending: [:])
        if let started = spawned.ready.startedNanos { vm.markStarted(at: started) }
        return vm
    }

    /// The waiting spare gets this VM (and another is started for the next); nil when there is none
    /// or it failed (the caller then starts a process of its own).
    private func spawnFromSpare(_ spec: VMProcessSpec, image: [UInt8], options: VMProcessOptions) -> SpawnedVM? {
        guard let spare = spares?.take() else { return nil }
        do throws(VMSpawnError) {
            return try options.spawner.assign(spare, spec: spec, image: image)
        } catch {
            logger.warning("a spare VM process failed; starting one for this VM", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Drains the VM's ring and watches its process until it ends, then records the end.
    func follow(_ vm: ManagedVM, runtime: ProcessRuntime, ring: VMRing, pending: [UInt64: Int64]) {
        guard let processes, let drain, let store else { return }
        let endings = EndingBox()
        drain.add(
            vmID: vm.id, ring: ring, name: vm.name, pending: pending, onEnding: { endings.set($0) },
            onCorrupt: { [weak runtime] in
                runtime?.stop(reason: "its ring held bytes that are not records")
            })
        let watcher = Thread { [self] in
            let exit = runtime.waitForExit()
            let ended = drain.finish(vm.id)
            drain.remove(vm.id)
            var failure: String?
            if !ended {
                failure = runtime.killReason ?? Self.describeDeath(pid: runtime.pid, exit: exit)
                store.vmEnded(
                    vm.id, atNanos: MonotonicClock.wallNanos(), state: VMState.failed.rawValue, reason: failure,
                    exitStatus: nil)
                store.closePendingConversions(of: vm.id)
            }
            store.vmProcess(vm.id, pid: nil)
            // Without its last record, what the store holds is the VM's final count.
            let recorded =
                failure == nil ? nil : (try? store.storedVMs(only: vm.id))?.first.map { ($0.conversions, $0.faults) }
            runtime.markFinished(ending: endings.value, failure: failure, recorded: recorded, ringWaits: ring.fullWaits)
            processes.runDirectory.removeFiles(of: vm.id)
            // Its cgroup, if it had one (the kernel removes only an empty one).
            CgroupPlacement().remove(vmID: vm.id)
            recordEnd(vm)
        }
        watcher.name = "memgate-vm\(vm.id)-process"
        watcher.start()
    }

    /// Why a VM process ended without its last record, in words an operator can act on.
    static func describeDeath(pid: Int32, exit: (code: Int32, signal: Int32)?) -> String {
        guard let exit else {
            return
                "the VM process (pid \(pid)) ended without recording how its guest ended (it was not this agent's child, so its exit status is unknown)"
        }
        if exit.signal != 0 {
            return "the VM process (pid \(pid)) was killed by signal \(exit.signal) (\(signalName(exit.signal)))"
        }
        return "the VM process (pid \(pid)) exited with status \(exit.code) without recording how its guest ended"
    }

    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            1: "SIGHUP", 2: "SIGINT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
            11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM", 31: "SIGSYS",
        ]
        return names[signal] ?? "signal \(signal)"
    }

    /// Stops a VM this agent will not keep, and waits until its end is recorded.
    func abandon(_ vm: ManagedVM, reason: String) {
        vm.runtime.stop(reason: reason)
        if vm.runtime.recordsItsLifecycle && vm.runtime is ProcessRuntime {
            vm.waitUntilRecorded()
        } else {
            recordEnd(vm)
        }
    }

    // MARK: Adoption

    /// Lists the VMs the store holds (not deleted) and adopts those whose processes run:
    /// each is checked by its pidfd and its socket's handshake, its ring resumes after what
    /// the store committed, and the policy in force reaches it. A VM whose process is gone has
    /// its ring drained and its end recorded. Call once, before serving.
    public func adopt() throws(AgentHostError) -> AdoptionReport {
        var report = AdoptionReport()
        guard let store else { return report }
        let stored: [StoredVM]
        do { stored = try store.storedVMs() } catch { throw .store(error) }
        let known = Set(stored.map(\.id))
        let pendingByVM: [Int64: [UInt64: Int64]]
        do { pendingByVM = try store.pendingVMConversions() } catch { throw .store(error) }
        var candidates: [(vm: StoredVM, pid: Int32, runtime: ProcessRuntime, managed: ManagedVM)] = []
        for vm in stored {
            if vm.endedNanos != nil {
                insert(ManagedVM(stored: vm, runtime: StoredRuntime(Self.view(of: vm))))
                report.ended.append(vm.id)
                continue
            }
            if let processes, let pid = vm.pid,
                let (runtime, ring) = candidate(vm, pid: pid, options: processes, report: &report)
            {
                let managed = ManagedVM(stored: vm, runtime: runtime)
                // Draining first: a guest waiting for room in a full ring needs it before anything else.
                ring.markRead(vm.ringRead)
                follow(managed, runtime: runtime, ring: ring, pending: pendingByVM[vm.id] ?? [:])
                insert(managed)
                candidates.append((vm, pid, runtime, managed))
                continue
            }
            close(vm, report: &report)
        }
        // The handshakes at once: each waits on its own process, which may be busy converting.
        let answers = Mutex([Int64: Result<String?, VMChannelError>]())
        let asked = candidates.map { (id: $0.vm.id, pid: $0.pid, client: $0.runtime.client) }
        DispatchQueue.concurrentPerform(iterations: asked.count) { index in
            let candidate = asked[index]
            let answer: Result<String?, VMChannelError>
            do throws(VMChannelError) {
                let hello = try candidate.client.hello()
                guard hello.pid == candidate.pid else {
                    throw VMChannelError("the handshake named pid \(hello.pid.map(String.init) ?? "?")")
                }
                answer = .success(hello.policyVersion)
            } catch {
                answer = .failure(error)
            }
            answers.withLock { $0[candidate.id] = answer }
        }
        for candidate in candidates {
            let (vm, pid, runtime, managed) = candidate
            switch answers.withLock({ $0[vm.id] }) {
            case .success(let policyVersion)?:
                runtime.heard(policyVersion: policyVersion)
                if runtime.policyVersion != policies.policy.version { runtime.policyChanged(policies.policy) }
                if vm.startedNanos != nil { watchStarted(managed) }
                report.adopted.append(vm.id)
                logger.notice("adopted a running VM", metadata: ["vm_id": "\(vm.id)", "pid": "\(pid)"])
            case .failure(let error)?:
                logger.error(
                    "a VM process did not answer its handshake; ending it",
                    metadata: ["vm_id": "\(vm.id)", "error": "\(error)"])
                runtime.kill(
                    reason:
                        "its process (pid \(pid)) did not answer the adopting agent's handshake (\(error)); it was killed"
                )
                report.closed.append(vm.id)
            case nil:
                report.closed.append(vm.id)
            }
        }
        // Logs of spares a previous agent left unused (each exited when its agent's pipe closed).
        if let processes {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: processes.runDirectory.path)) ?? []
            where name.hasPrefix("spare-") && name.hasSuffix(".log") {
                unlink(processes.runDirectory.path + "/" + name)
            }
        }
        // Files of VMs the store does not know (a run directory shared by mistake): reported, never touched.
        if let processes {
            for id in processes.runDirectory.vmIDs() where !known.contains(id) {
                report.refused.append(processes.runDirectory.socketPath(id))
            }
        }
        // Only now: a spare started earlier would have had its log taken for a stale one.
        spares?.fill()
        return report
    }

    private func insert(_ vm: ManagedVM) {
        state.withLock { $0.vms[vm.id] = vm }
    }

    /// A VM process that is still there and is the one the store names: its pid runs this binary's
    /// `vm process` for this VM, and its ring was made by that pid. nil otherwise (the VM is then closed).
    private func candidate(_ vm: StoredVM, pid: Int32, options: VMProcessOptions, report: inout AdoptionReport) -> (
        ProcessRuntime, VMRing
    )? {
        let socket = options.runDirectory.socketPath(vm.id)
        if let problem = RunDirectory.socketProblem(socket), !problem.hasPrefix("cannot stat") {
            logger.error("refused a VM socket", metadata: ["path": "\(socket)", "problem": "\(problem)"])
            report.refused.append(socket)
            return nil
        }
        guard Self.isVMProcess(pid: pid, vmID: vm.id) else { return nil }
        guard let ring = try? VMRing.open(path: options.runDirectory.ringPath(vm.id), vmID: vm.id),
            ring.producerPID == pid
        else { return nil }
        let pidfd = clinux_pidfd_open(pid)
        guard pidfd >= 0 else { return nil }
        let client = VMProcessClient(runDirectory: options.runDirectory, vmID: vm.id, pid: pid)
        return (
            ProcessRuntime(
                vmID: vm.id, client: client, pidfd: pidfd, isChild: false, backend: vm.backend, dataRAM: vm.dataRAM,
                status: nil), ring
        )
    }

    /// True when `pid` runs `vm process` for `vmID` (a pid the kernel gave to someone else is not).
    static func isVMProcess(pid: Int32, vmID: Int64) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard arguments.contains("vm") && arguments.contains("process") else { return false }
        // A spare learned its id with its spec: the ring's header and the handshake name it.
        if arguments.contains("--spare") { return true }
        guard let index = arguments.firstIndex(of: "--vm-id"), index + 1 < arguments.count else { return false }
        return arguments[index + 1] == "\(vmID)"
    }

    /// A VM whose process is gone: what its ring holds goes in, then its end.
    private func close(_ vm: StoredVM, report: inout AdoptionReport) {
        guard let store else { return }
        var ended = false
        if let processes, let drain,
            let ring = try? VMRing.open(path: processes.runDirectory.ringPath(vm.id), vmID: vm.id)
        {
            ring.markRead(vm.ringRead)
            let pending = (try? store.pendingVMConversions())?[vm.id] ?? [:]
            drain.add(vmID: vm.id, ring: ring, name: vm.name, pending: pending, onEnding: { _ in }, onCorrupt: {})
            ended = drain.finish(vm.id)
            drain.remove(vm.id)
        }
        if !ended {
            let reason =
                vm.pid.map {
                    "its process (pid \($0)) was gone when the agent started, without recording how its guest ended"
                }
                ?? "the agent that ran it ended without recording how the VM ended"
            store.vmEnded(vm.id, atNanos: MonotonicClock.wallNanos(), state: "lost", reason: reason, exitStatus: nil)
            store.closePendingConversions(of: vm.id)
        }
        store.vmProcess(vm.id, pid: nil)
        processes?.runDirectory.removeFiles(of: vm.id)
        report.closed.append(vm.id)
        // Listed as the store now says it ended.
        if let again = (try? store.storedVMs(only: vm.id))?.first {
            insert(ManagedVM(stored: again, runtime: StoredRuntime(Self.view(of: again))))
        }
    }

    static func view(of vm: StoredVM) -> StoredRuntime.StoredVMView {
        let map = PageStateMap(bounds: vm.dataRAM, initial: vm.initialState, runs: vm.runs)
        let statistics = ConversionStatistics()
        let state = VMState(rawValue: vm.finalState ?? "") ?? .failed
        return StoredRuntime.StoredVMView(
            lifecycle: VMLifecycle(state: state, reason: vm.finalReason, exitStatus: vm.exitStatus),
            state: vm.finalState ?? "lost", backend: vm.backend, pageStates: map,
            statistics: statistics, conversions: vm.conversions, faults: vm.faults)
    }
}

/// The ending a drain saw, handed to the watcher thread.
final class EndingBox: @unchecked Sendable {
    private let lock = NSLock()
    private var ending: VMEnding?
    func set(_ value: VMEnding) {
        lock.lock()
        ending = value
        lock.unlock()
    }
    var value: VMEnding? {
        lock.lock()
        defer { lock.unlock() }
        return ending
    }
}
