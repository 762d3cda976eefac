import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import Synchronization
import VMM
import VMProcess

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
    let logger: Logger
    /// Set when VMs run in processes of their own (`serve`); nil: inside this process.
    let processes: VMProcessOptions?
    /// Reads every VM process's ring into the store (with `processes`).
    let drain: RingDrain?
    /// A VM process started ahead of the next create (with `processes`).
    let spares: SparePool?
    let memorySink = InMemoryEventSink()
    let defaults: VMDefaults
    /// Page-state runs a VM may have unless its spec says: `maxVMs` VMs at this limit fit
    /// the process's mapping budget, so no VM's fragmentation can fail another's conversion.
    public var runLimit: Int { defaults.runLimit }

    /// What every VM of this host gets unless its spec says otherwise.
    struct VMDefaults {
        var aliasMechanism: AliasMechanism?
        /// Rows per second per VM and kind for what guests can cause at will (VMConfiguration.recordingBudget).
        var recordingBudget: UInt64?
        var runLimit: Int
    }

    struct State {
        var vms: [Int64: ManagedVM] = [:]
        var draining = false
        var recordingFailure: RecordingFailure?
        var nextLocalID: Int64 = 1
        /// Names of VMs being created (not yet in `vms`): a name is unique among the VMs not deleted.
        var reservedNames: Set<String> = []
        /// Counts of the VMs deleted so far, so the process-wide totals never go down.
        var retired = HostTotals()
    }
    let state = Mutex(State())
    /// Serializes policy replacement (compare-and-swap on the version).
    private let policyLock = NSLock()

    /// - Parameter aliasMechanism: how alias-backend VMs convert (nil: the host probe decides, `AliasProbe`).
    public init(
        system: KVM.System, store: EventStore?, policies: PolicyStore, maxVMs: Int = 64,
        aliasMechanism: AliasMechanism? = nil, recordingBudget: UInt64? = 1000, processes: VMProcessOptions? = nil,
        logger: Logger
    ) {
        self.system = system
        self.store = store
        self.policies = policies
        self.maxVMs = maxVMs
        // VM processes record into rings only the store drains: without a store they run inside the agent.
        self.processes = store == nil ? nil : processes
        drain = self.processes == nil ? nil : store.map { RingDrain(store: $0, logger: logger) }
        spares = self.processes.map { SparePool(spawner: $0.spawner, logLevel: $0.logLevel, logger: logger) }
        let runLimit = ProtectAliasBackend.runLimit(
            maxMapCount: HostLimits.maxMapCount() ?? HostLimits.defaultMaxMapCount, vms: maxVMs)
        defaults = VMDefaults(aliasMechanism: aliasMechanism, recordingBudget: recordingBudget, runLimit: runLimit)
        self.logger = logger
        store?.onFailure { [weak self] reason in self?.recordingFailed(reason) }
        drain?.start()
    }

    // MARK: Creation

    /// Builds a VM, registers it in the store, and starts it when `start`.
    /// Nothing is left behind when any step fails.
    public func create(_ spec: VMSpec, start: Bool) throws(AgentHostError) -> ManagedVM {
        try spec.validate()
        if let maxRuns = spec.maxRuns, maxRuns > runLimit {
            throw .invalid(
                field: "max_runs",
                message: "must be from 1 to \(runLimit) on this agent (each VM's share of vm.max_map_count)")
        }
        let localID = try state.withLock { state throws(AgentHostError) -> Int64 in
            guard !state.draining else { throw .shuttingDown }
            if let failure = state.recordingFailure { throw .store(.recording(failure)) }
            guard state.vms.count < maxVMs else { throw .tooManyVMs(maxVMs) }
            // Names address VMs: one per name among the VMs not deleted (an ended VM keeps its name until DELETE).
            if let holder = state.vms.values.first(where: { $0.name == spec.name }) {
                throw .nameTaken(spec.name, id: holder.id)
            }
            guard state.reservedNames.insert(spec.name).inserted else { throw .nameTaken(spec.name, id: nil) }
            defer { state.nextLocalID += 1 }
            return state.nextLocalID
        }
        // Held from here until the VM is listed (or its creation failed).
        defer { _ = state.withLock { $0.reservedNames.remove(spec.name) } }
        // The store's ids outlive this process; without a store, a per-agent counter will do.
        let vmID = store?.reserveVMID() ?? localID
        let memoryBytes = spec.memoryMib << 20
        let image: GuestImage
        do {
            image = try ELFLoader.parse(spec.image, loadable: BootLayout.imageBase..<memoryBytes)
        } catch {
            throw .badImage("\(error)")
        }
        let vm: ManagedVM
        if let processes {
            vm = try createProcess(spec, id: vmID, options: processes, start: start)
        } else {
            vm = try createInProcess(spec, id: vmID, image: image)
        }
        let admitted = state.withLock { state -> Bool in
            guard !state.draining else { return false }
            state.vms[vmID] = vm
            return true
        }
        guard admitted else {
            abandon(vm, reason: "the agent began shutting down as it was created")
            throw .shuttingDown
        }
        logger.info("VM created", metadata: ["vm_id": "\(vmID)", "name": "\(spec.name)"])
        // A policy replaced while the VM process started did not reach it (it was not listed yet).
        if let runtime = vm.runtime as? ProcessRuntime, runtime.policyVersion != policies.policy.version {
            runtime.policyChanged(policies.policy)
        }
        // A VM process asked to start at once has (its ring recorded when); only its end is watched for.
        if start, vm.startedNanos != nil {
            watchStarted(vm)
        } else if start {
            do throws(AgentHostError) {
                try self.start(vmID)
            } catch {
                abandon(vm, reason: "it could not be started: \(error)")
                remove(vmID)
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
        do throws(VMRuntimeError) {
            try vm.runtime.start()
        } catch {
            throw .conflict(error.description)
        }
        let now = MonotonicClock.wallNanos()
        vm.markStarted(at: now)
        // A VM process records its start in its ring, in order with what its guest does.
        if !vm.runtime.recordsItsLifecycle { store?.vmStarted(id, atNanos: now) }
        watchStarted(vm)
    }

    /// Waits (on a thread of its own) for a started VM to end or time out.
    func watchStarted(_ vm: ManagedVM) {
        let watcher = Thread { [self] in watch(vm) }
        watcher.name = "memgate-vm\(vm.id)-watch"
        watcher.start()
    }

    public func pause(_ id: Int64) throws(AgentHostError) {
        let vm = try existing(id)
        do throws(VMRuntimeError) { try vm.runtime.pause() } catch { throw .conflict(error.description) }
        if !vm.runtime.recordsItsLifecycle { store?.vmLifecycle(id, .paused, atNanos: MonotonicClock.wallNanos()) }
    }

    public func resume(_ id: Int64) throws(AgentHostError) {
        let vm = try existing(id)
        do throws(VMRuntimeError) { try vm.runtime.resume() } catch { throw .conflict(error.description) }
        if !vm.runtime.recordsItsLifecycle { store?.vmLifecycle(id, .resumed, atNanos: MonotonicClock.wallNanos()) }
    }

    /// Stops the VM (if it has not ended) and returns once its end is recorded.
    public func stop(_ id: Int64, reason: String = "stopped through the API") throws(AgentHostError) {
        let vm = try existing(id)
        vm.runtime.stop(reason: reason)
        if vm.startedNanos == nil && !vm.runtime.recordsItsLifecycle { recordEnd(vm) }
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
            vm.runtime.stop(reason: "deleted before it was started")
            if !vm.runtime.recordsItsLifecycle { recordEnd(vm) }
        }
        vm.waitUntilRecorded()
        remove(id)
        store?.vmDeleted(id, atNanos: MonotonicClock.wallNanos())
        processes?.runDirectory.removeFiles(of: id, keepLog: false)
        logger.info("VM deleted", metadata: ["vm_id": "\(id)"])
    }

    /// Forgets a VM, keeping its counts in the process-wide totals (in the same step, so a
    /// scrape sees them either on the VM or in the totals, never neither or both).
    func remove(_ id: Int64) {
        guard let vm = vm(id) else { return }
        let last = vm.snapshot
        state.withLock { state in
            guard state.vms.removeValue(forKey: id) != nil else { return }
            state.retired.add(last)
        }
    }

    /// Exits, faults and conversions of every VM this agent has held since it started.
    public var totals: HostTotals {
        // Each VM process is asked outside the lock; a VM deleted meanwhile is counted at most once.
        let (retired, held) = state.withLock { ($0.retired, Array($0.vms.values)) }
        var totals = retired
        for vm in held { totals.add(vm.snapshot) }
        return totals
    }

    /// Refuses new work and then either stops every VM and records every end, or (VMs in
    /// processes of their own, `stopVMs` false) leaves them running for the next agent after
    /// committing what their rings hold: the first half of an agent exit (the caller then closes the store).
    public func shutdown(reason: String = "the agent is shutting down", stopVMs: Bool = true) {
        let all = state.withLock { state -> [ManagedVM] in
            state.draining = true
            return Array(state.vms.values)
        }
        spares?.close()
        if processes != nil && !stopVMs {
            drain?.stop()
            let running = all.filter { !$0.isRecorded }
            for vm in running { (vm.runtime as? ProcessRuntime)?.client.close() }
            logger.notice("VMs left running for the next agent", metadata: ["vms": "\(running.count)"])
            return
        }
        for vm in all {
            vm.runtime.stop(reason: reason)
            if vm.startedNanos == nil && !vm.runtime.recordsItsLifecycle { recordEnd(vm) }
        }
        for vm in all { vm.waitUntilRecorded() }
        drain?.stop()
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
        for vm in all { vm.runtime.fail(reason: "event store failed: \(failure)") }
    }

    /// Why recording stopped for good, if it has (the agent then exits with a status that says so).
    /// Asks the store too: a VM the failure ended can be seen ended before the store's failure
    /// handlers have reached this host, and its end must still be told as the store's failure.
    public var recordingFailure: RecordingFailure? { state.withLock { $0.recordingFailure } ?? store?.failure }

    /// Waits for a started VM to end (or its timeout), then records the end.
    private func watch(_ vm: ManagedVM) {
        if !vm.runtime.waitUntilFinished(timeout: vm.timeout) {
            vm.markTimedOut()
            let seconds =
                vm.timeout.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
            vm.runtime.stop(reason: "timeout: still running after \(seconds) s")
        }
        recordEnd(vm)
    }

    /// Records how the VM ended, exactly once.
    func recordEnd(_ vm: ManagedVM) {
        let now = MonotonicClock.wallNanos()
        guard vm.claimEnd(at: now) else { return }
        let outcome = vm.lifecycle
        let state = outcome.state.isTerminal ? outcome.state.rawValue : VMState.stopped.rawValue
        // A VM process's end reached the store with its ring's last record (or was recorded when its process died).
        if !vm.runtime.recordsItsLifecycle {
            vm.machine?.flushAggregates()
            if let failure = store?.vmEnded(
                vm.id, atNanos: now, state: state, reason: outcome.reason,
                exitStatus: outcome.exitStatus, layout: vm.snapshot.pageStates)
            {
                logger.error(
                    "could not record the end of a VM", metadata: ["vm_id": "\(vm.id)", "error": "\(failure)"])
            }
        }
        logger.info(
            "VM ended", metadata: ["vm_id": "\(vm.id)", "state": "\(state)", "reason": "\(outcome.reason ?? "")"])
        // An ended VM stays listed until DELETE for its record; its RAM goes back to the host now.
        vm.runtime.release { [logger] message in logger.warning("\(message)", metadata: ["vm_id": "\(vm.id)"]) }
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
    public func replacePolicy(_ policy: VersionedPolicy, expected: String?, change: PolicyChange)
        throws(PolicyReplaceError) -> Bool
    {
        policyLock.lock()
        defer { policyLock.unlock() }
        let current = policies.policy
        // Already in force: done, whatever the tag (RFC 9110 §13.1.1 lets a server say so for a
        // change already made; a controller retrying a PUT whose answer it lost is not refused).
        guard policy.version != current.version else { return false }
        if let expected, expected != current.version { throw .versionMismatch(current: current.version) }
        do {
            try store?.recordPolicy(policy, change: change, atNanos: MonotonicClock.wallNanos())
        } catch {
            throw .store(error)
        }
        policies.replace(with: policy)
        logger.notice("policy replaced", metadata: ["version": "\(policy.version)", "by": "\(change.appliedBy)"])
        // VM processes hold their own copy; one that cannot be reached gets it when an agent adopts it.
        for vm in vms where !vm.isRecorded { vm.runtime.policyChanged(policy) }
        return true
    }
}
