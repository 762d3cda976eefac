import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import Synchronization
import VMM

/// The one place that owns the VMs of a host: creation (with registration in
/// the store), lifecycle, and the record of every VM's end on every path —
/// guest exit, crash, failure, fault, timeout, stop, delete, agent shutdown.
/// One VM's failure never reaches another.
public final class AgentHost: Sendable {
    public let system: KVM.System
    /// nil with `--no-record`: events go to a bounded in-memory sink.
    public let store: EventStore?
    public let policies: PolicyStore
    public let maxVMs: Int
    private let logger: Logger
    private let memorySink = InMemoryEventSink()
    private let defaults: VMDefaults
    /// Page-state runs a VM may have unless its spec says: `maxVMs` VMs at this limit fit
    /// the process's mapping budget, so no VM's fragmentation can fail another's conversion.
    public var runLimit: Int { defaults.runLimit }

    /// What every VM of this host gets unless its spec says otherwise.
    private struct VMDefaults {
        var aliasMechanism: AliasMechanism?
        /// Rows per second per VM and kind for what guests can cause at will (VMConfiguration.recordingBudget).
        var recordingBudget: UInt64?
        var runLimit: Int
    }

    private struct State {
        var vms: [Int64: ManagedVM] = [:]
        var draining = false
        var recordingFailure: RecordingFailure?
        var nextLocalID: Int64 = 1
        /// Counts of the VMs deleted so far, so the process-wide totals never go down.
        var retired = HostTotals()
    }
    private let state = Mutex(State())
    /// Serializes policy replacement (compare-and-swap on the version).
    private let policyLock = NSLock()

    /// - Parameter aliasMechanism: how alias-backend VMs convert (nil: the host probe decides, `AliasProbe`).
    public init(system: KVM.System, store: EventStore?, policies: PolicyStore, maxVMs: Int = 64,
                aliasMechanism: AliasMechanism? = nil, recordingBudget: UInt64? = 1000, logger: Logger) {
        self.system = system
        self.store = store
        self.policies = policies
        self.maxVMs = maxVMs
        let runLimit = ProtectAliasBackend.runLimit(maxMapCount: HostLimits.maxMapCount() ?? HostLimits.defaultMaxMapCount, vms: maxVMs)
        defaults = VMDefaults(aliasMechanism: aliasMechanism, recordingBudget: recordingBudget, runLimit: runLimit)
        self.logger = logger
        store?.onFailure { [weak self] reason in self?.recordingFailed(reason) }
    }

    // MARK: Creation

    /// Builds a VM, registers it in the store, and starts it when `start`.
    /// Nothing is left behind when any step fails.
    public func create(_ spec: VMSpec, start: Bool) throws(AgentHostError) -> ManagedVM {
        try spec.validate()
        if let maxRuns = spec.maxRuns, maxRuns > runLimit {
            throw .invalid(field: "max_runs", message: "must be from 1 to \(runLimit) on this agent (each VM's share of vm.max_map_count)")
        }
        let localID = try state.withLock { state throws(AgentHostError) -> Int64 in
            guard !state.draining else { throw .shuttingDown }
            if let failure = state.recordingFailure { throw .store(.recording(failure)) }
            guard state.vms.count < maxVMs else { throw .tooManyVMs(maxVMs) }
            defer { state.nextLocalID += 1 }
            return state.nextLocalID
        }
        // The store's ids outlive this process; without a store, a per-agent counter will do.
        let vmID = store?.reserveVMID() ?? localID
        let memoryBytes = spec.memoryMib << 20
        let image: GuestImage
        do {
            image = try ELFLoader.parse(spec.image, loadable: BootLayout.imageBase..<memoryBytes)
        } catch {
            throw .badImage("\(error)")
        }
        var configuration = VMConfiguration(name: spec.name)
        configuration.id = vmID
        configuration.memoryBytes = memoryBytes
        configuration.vcpuCount = spec.vcpus
        configuration.commandLine = spec.commandLine
        configuration.initialState = spec.initialState
        configuration.backend = spec.backend
        configuration.maxRuns = spec.maxRuns ?? runLimit
        configuration.recordingBudget = defaults.recordingBudget
        configuration.aliasMechanism = spec.aliasMechanism ?? defaults.aliasMechanism
        let machine: VirtualMachine
        do {
            machine = try VirtualMachine(system: system, configuration: configuration, image: image, logger: logger,
                                         policies: policies, events: store ?? memorySink, consoleStream: spec.consoleStream)
        } catch {
            throw .creationFailed(error.description)
        }
        let created = MonotonicClock.wallNanos()
        do {
            try store?.register(VMRegistration(name: spec.name, labels: spec.labels, memoryBytes: memoryBytes, vcpus: spec.vcpus,
                                               backend: machine.backendKind.rawValue, dataRAM: machine.pageStates.bounds,
                                               initialState: spec.initialState), id: vmID, createdNanos: created)
        } catch {
            throw .store(error)
        }
        let vm = ManagedVM(id: vmID, spec: spec, createdNanos: created, machine: machine)
        let admitted = state.withLock { state -> Bool in
            guard !state.draining else { return false }
            state.vms[vmID] = vm
            return true
        }
        guard admitted else {
            recordEnd(vm)
            throw .shuttingDown
        }
        logger.info("VM created", metadata: ["vm_id": "\(vmID)", "name": "\(spec.name)"])
        if start {
            do throws(AgentHostError) {
                try self.start(vmID)
            } catch {
                remove(vmID)
                recordEnd(vm)
                throw error
            }
        }
        return vm
    }

    // MARK: Lookup

    public func vm(_ id: Int64) -> ManagedVM? { state.withLock { $0.vms[id] } }

    /// Every VM this agent holds, by id.
    public var vms: [ManagedVM] { state.withLock { $0.vms.values.sorted { $0.id < $1.id } } }

    private func existing(_ id: Int64) throws(AgentHostError) -> ManagedVM {
        guard let vm = vm(id) else { throw .notFound(id) }
        return vm
    }

    // MARK: Lifecycle

    public func start(_ id: Int64) throws(AgentHostError) {
        let vm = try existing(id)
        guard !state.withLock({ $0.draining }) else { throw .shuttingDown }
        do {
            try vm.machine.start()
        } catch {
            throw .conflict(error.description)
        }
        let now = MonotonicClock.wallNanos()
        vm.markStarted(at: now)
        store?.vmStarted(id, atNanos: now)
        let watcher = Thread { [self] in watch(vm) }
        watcher.name = "memgate-vm\(id)-watch"
        watcher.start()
    }

    public func pause(_ id: Int64) throws(AgentHostError) {
        do { try existing(id).machine.pause() } catch let error as LifecycleError { throw .conflict(error.description) }
        catch let error as AgentHostError { throw error } catch { throw .conflict("\(error)") }
        store?.vmLifecycle(id, .paused, atNanos: MonotonicClock.wallNanos())
    }

    public func resume(_ id: Int64) throws(AgentHostError) {
        do { try existing(id).machine.resume() } catch let error as LifecycleError { throw .conflict(error.description) }
        catch let error as AgentHostError { throw error } catch { throw .conflict("\(error)") }
        store?.vmLifecycle(id, .resumed, atNanos: MonotonicClock.wallNanos())
    }

    /// Stops the VM (if it has not ended) and returns once its end is recorded.
    public func stop(_ id: Int64, reason: String = "stopped through the API") throws(AgentHostError) {
        let vm = try existing(id)
        vm.machine.stop(reason: reason)
        if vm.startedNanos == nil { recordEnd(vm) }
        vm.waitUntilRecorded()
    }

    /// Forgets a VM that is not running (its rows stay in the store).
    public func delete(_ id: Int64) throws(AgentHostError) {
        let vm = try existing(id)
        let current = vm.lifecycle.state
        guard current == .created || current.isTerminal else {
            throw .conflict("VM \(id) is \(current.rawValue); stop it before deleting it")
        }
        if current == .created {
            vm.machine.stop(reason: "deleted before it was started")
            recordEnd(vm)
        }
        vm.waitUntilRecorded()
        remove(id)
        logger.info("VM deleted", metadata: ["vm_id": "\(id)"])
    }

    /// Forgets a VM, keeping its counts in the process-wide totals (in the same step, so a
    /// scrape sees them either on the VM or in the totals, never neither or both).
    private func remove(_ id: Int64) {
        state.withLock { state in
            guard let vm = state.vms.removeValue(forKey: id) else { return }
            state.retired.add(vm.machine)
        }
    }

    /// Exits, faults and conversions of every VM this agent has held since it started.
    public var totals: HostTotals {
        state.withLock { state in
            var totals = state.retired
            for vm in state.vms.values { totals.add(vm.machine) }
            return totals
        }
    }

    /// Stops every VM, records every end, and refuses new work: the first half
    /// of a graceful agent exit (the caller then closes the store).
    public func shutdown(reason: String = "the agent is shutting down") {
        let all = state.withLock { state -> [ManagedVM] in
            state.draining = true
            return Array(state.vms.values)
        }
        for vm in all {
            vm.machine.stop(reason: reason)
            if vm.startedNanos == nil { recordEnd(vm) }
        }
        for vm in all { vm.waitUntilRecorded() }
        logger.info("all VMs ended", metadata: ["vms": "\(all.count)"])
    }

    /// The store failed for good: nothing the VMs do can be recorded any more, so every
    /// VM fails with the store's reason, and no new VM starts.
    private func recordingFailed(_ failure: RecordingFailure) {
        let all = state.withLock { state -> [ManagedVM] in
            state.recordingFailure = failure
            return Array(state.vms.values)
        }
        logger.error("recording failed; failing every VM", metadata: ["error": "\(failure)", "vms": "\(all.count)"])
        for vm in all { vm.machine.fail(reason: "event store failed: \(failure)") }
    }

    /// Why recording stopped for good, if it has (the agent then exits with a status that says so).
    public var recordingFailure: RecordingFailure? { state.withLock { $0.recordingFailure } }

    /// Waits for a started VM to end (or its timeout), then records the end.
    private func watch(_ vm: ManagedVM) {
        if !vm.machine.waitUntilFinished(timeout: vm.timeout) {
            vm.markTimedOut()
            let seconds = vm.timeout.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
            vm.machine.stop(reason: "timeout: still running after \(seconds) s")
        }
        recordEnd(vm)
    }

    /// Records how the VM ended, exactly once.
    private func recordEnd(_ vm: ManagedVM) {
        let now = MonotonicClock.wallNanos()
        guard vm.claimEnd(at: now) else { return }
        let outcome = vm.lifecycle
        let state = outcome.state.isTerminal ? outcome.state.rawValue : VMState.stopped.rawValue
        vm.machine.flushAggregates()
        if let failure = store?.vmEnded(vm.id, atNanos: now, state: state, reason: outcome.reason,
                                        exitStatus: outcome.exitStatus, layout: vm.machine.pageStates) {
            logger.error("could not record the end of a VM", metadata: ["vm_id": "\(vm.id)", "error": "\(failure)"])
        }
        logger.info("VM ended", metadata: ["vm_id": "\(vm.id)", "state": "\(state)", "reason": "\(outcome.reason ?? "")"])
        // An ended VM stays listed until DELETE for its record; its RAM goes back to the host now.
        do throws(KVMError) {
            try vm.machine.releaseMemory()
        } catch {
            logger.warning("could not free an ended VM's memory", metadata: ["vm_id": "\(vm.id)", "error": "\(error)"])
        }
        vm.setRecorded()
        vm.endRecorded()
    }

    // MARK: Policy

    /// Why a policy replacement did not happen.
    public enum PolicyReplaceError: Error, Sendable, Equatable {
        /// The policy in force has another version than the caller expected.
        case versionMismatch(current: String)
        case store(EventStoreError)
    }

    /// Replaces the policy if the one in force has version `expected` (nil: unconditionally).
    /// Recorded with who applied it before it takes effect; returns whether it changed.
    @discardableResult
    public func replacePolicy(_ policy: VersionedPolicy, expected: String?, appliedBy: String) throws(PolicyReplaceError) -> Bool {
        policyLock.lock()
        defer { policyLock.unlock() }
        let current = policies.policy
        // Already in force: done, whatever the tag (RFC 9110 §13.1.1 lets a server say so for a
        // change already made; a controller retrying a PUT whose answer it lost is not refused).
        guard policy.version != current.version else { return false }
        if let expected, expected != current.version { throw .versionMismatch(current: current.version) }
        do {
            try store?.recordPolicy(policy, appliedBy: appliedBy, atNanos: MonotonicClock.wallNanos())
        } catch {
            throw .store(error)
        }
        policies.replace(with: policy)
        logger.notice("policy replaced", metadata: ["version": "\(policy.version)", "by": "\(appliedBy)"])
        return true
    }
}
