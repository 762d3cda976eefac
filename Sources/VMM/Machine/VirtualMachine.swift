import Foundation
import KVM
import Logging
import MemoryModel

/// A running (or runnable) guest: KVM VM, memory backend, conversion engine,
/// vCPU threads, console, lifecycle.
///
/// Every failure of the guest — a triple fault, an unhandled exit, a denied
/// memory fault, a KVM error on one of its vCPUs — ends this VM only; nothing
/// here touches the process or other VMs.
public final class VirtualMachine: Sendable {
    public let configuration: VMConfiguration
    public let layout: BootLayout
    /// What backs this VM's memory, in words.
    public let memoryDescription: String
    let kvmVM: KVM.VM
    let stores: GuestStores
    let memoryOps: KVMMemoryOps
    let vcpus: [VCPU]
    public let engine: ConversionEngine
    private let control: VMControl
    private let console: ConsoleOutput
    private let syncHandler: SyncHandler?
    private let registerSync: Bool
    private let runGate: RunGate?
    private let runTimer = RunTimer()
    private let exits: ExitCounters
    private let logger: Logger

    public var name: String { configuration.name }
    public var backendKind: BackendKind { engine.backend.kind }
    /// The alias backend's mechanism; nil for the attributes backend.
    public var aliasMechanism: AliasMechanism? { (engine.backend as? AliasMemoryBackend)?.mechanism }

    public init(
        system: KVM.System, configuration: VMConfiguration, image: GuestImage, logger: Logger,
        policies: PolicyStore = PolicyStore(), events: EventSink = InMemoryEventSink(),
        consoleStream: (@Sendable ([UInt8]) -> Bool)? = nil,
        syncHandler: SyncHandler? = nil
    ) throws(VMCreationError) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "vm"] = "\(configuration.name)"
        self.logger = logger
        self.syncHandler = syncHandler
        exits = ExitCounters(vcpus: configuration.vcpuCount)
        console = ConsoleOutput(
            capacity: configuration.consoleCapacity, vcpuCount: configuration.vcpuCount,
            name: configuration.name, stream: consoleStream)

        let caps = system.capabilityReport()
        let kind = try Self.chooseBackend(configuration.backend, caps: caps)
        do {
            let cpuid = try system.supportedCPUID()
            layout = try Self.makeLayout(configuration, image: image, cpuid: cpuid)
            let vm = try system.createVM(type: kind == .attributes ? (caps.privateMemoryVMType ?? .default) : .default)
            kvmVM = vm
            try vm.setTSSAddress(0xFFFB_D000)
            if configuration.enableHypercallExit, vm.check(.exitHypercall) & (1 << Int32(Hypercall.mapGPARange)) != 0 {
                try vm.enable(.exitHypercall, args: [1 << Hypercall.mapGPARange])
            }
            var vcpus: [VCPU] = []
            for index in 0..<configuration.vcpuCount {
                let vcpu = try vm.createVCPU(index: UInt32(index))
                try vcpu.setCPUID(cpuid)
                try LongModeCPU.configure(
                    vcpu, entry: image.entry, stackTop: layout.stackTop(vcpu: index),
                    bootInfo: layout.bootInfoAddress(vcpu: index))
                vcpus.append(vcpu)
            }
            let dataRAM = PageRange(start: layout.dataRAM.lowerBound, end: layout.dataRAM.upperBound)
            let initial = PageStateMap(bounds: dataRAM, initial: configuration.initialState)
            let mechanism = configuration.aliasMechanism ?? AliasProbe.cached(system: system, logger: logger).mechanism
            let runLimit =
                switch mechanism {
                case .memslot: min(configuration.maxRuns ?? Int.max, max(caps.maxMemslots - 1, 1))
                case .protect: configuration.maxRuns ?? ProtectAliasBackend.defaultRunLimit
                }
            // Only memslot rewrites need the other vCPUs out of KVM_RUN, and only if there are others.
            let gate =
                kind == .alias && mechanism == .memslot && vcpus.count > 1 ? RunGate(kickers: vcpus.map(\.kicker)) : nil
            let built = try MemoryBuilder(vm: vm, layout: layout, initial: initial, runLimit: runLimit, logger: logger)
                .build(kind, mechanism: mechanism, gate: gate, caps: caps)
            runGate = gate
            stores = built.stores
            memoryOps = built.ops
            memoryDescription = built.description
            try Self.loadBootImage(
                image, layout: layout, configuration: configuration, aliased: kind == .alias,
                into: built.stores.bootRegion)
            engine = ConversionEngine(
                vmID: configuration.id, vmName: configuration.name, ramSize: layout.ramSize, initial: initial,
                backend: built.backend, policies: policies, sink: events,
                recordingBudget: configuration.recordingBudget, logger: logger)
            registerSync = vcpus.allSatisfy { $0.enableRegisterSync(hostMask: caps.syncRegsMask) }
            self.vcpus = vcpus
        } catch let error as VMCreationError {
            throw error
        } catch let error as KVMError {
            throw .kvm(error)
        } catch let error as BootError {
            throw .layout(error)
        } catch {
            throw .kvm(KVMError("VM set-up", errno: 0, hint: "\(error)"))
        }
        control = VMControl(kickers: vcpus.map(\.kicker))
        logger.info(
            "VM created",
            metadata: [
                "memory": "\(layout.ramSize)", "vcpus": "\(configuration.vcpuCount)", "backend": "\(memoryDescription)",
                "boot_region": "\(layout.bootRegionSize)", "data_ram": "\(layout.dataRAM)",
            ])
    }

    static func chooseBackend(_ requested: BackendKind?, caps: CapabilityReport) throws(VMCreationError) -> BackendKind
    {
        let availability = HostReport.backends(for: caps)
        let attributes = availability.first { $0.name == .attributes }
        let usable = attributes?.usable ?? false
        switch requested {
        case nil: return usable ? .attributes : .alias
        case .attributes? where !usable:
            throw .backendUnavailable(.attributes, reason: attributes?.reason ?? "not reported")
        case let kind?: return kind
        }
    }

    private static func makeLayout(
        _ configuration: VMConfiguration, image: GuestImage,
        cpuid: CPUIDTable
    ) throws(BootError) -> BootLayout {
        try BootInfo.validate(commandLine: configuration.commandLine)
        return try BootLayout(
            ramSize: configuration.memoryBytes, vcpuCount: configuration.vcpuCount,
            sharedBit: configuration.sharedBit, imageEnd: image.end,
            physicalAddressBits: cpuid.physicalAddressBits ?? 36)
    }

    /// Copies the image, GDT, page tables and boot infos into the boot region.
    private static func loadBootImage(
        _ image: GuestImage, layout: BootLayout, configuration: VMConfiguration,
        aliased: Bool, into memory: HostMemory
    ) throws(BootError) {
        for segment in image.segments { memory.write(segment.bytes, at: Int(segment.address)) }
        memory.write(GDT.bytes(tssBase: BootLayout.tssAddress), at: Int(BootLayout.gdtAddress))
        memory.write(try PageTables.build(for: layout), at: Int(BootLayout.pageTablesAddress))
        for index in 0..<layout.vcpuCount {
            let info = BootInfo(
                layout: layout, vcpu: index, transport: configuration.transport,
                dataInitiallyShared: configuration.initialState == .shared,
                commandLine: configuration.commandLine, aliased: aliased)
            memory.write(info.encoded(), at: Int(layout.bootInfoAddress(vcpu: index)))
        }
    }

    // MARK: - Lifecycle

    public var state: VMState { control.snapshot.state }
    public var lifecycle: VMLifecycle { control.snapshot }

    /// Starts one thread per vCPU.
    public func start() throws(LifecycleError) {
        try control.start(threads: vcpus.count)
        for vcpu in vcpus {
            let runner = VCPURunner(
                vcpu: vcpu, kicker: vcpu.kicker, control: control, console: console, engine: engine,
                syncHandler: syncHandler, registerSync: registerSync, gate: runGate, runNanos: runTimer, exits: exits,
                logger: logger)
            let thread = Thread { runner.run() }
            thread.name = "\(configuration.name)-vcpu\(vcpu.index)"
            thread.start()
        }
        logger.info("VM started")
    }

    /// Returns once every vCPU is parked outside KVM_RUN.
    public func pause() throws(LifecycleError) {
        try control.pause()
        logger.info("VM paused")
    }

    public func resume() throws(LifecycleError) {
        try control.resume()
        logger.info("VM resumed")
    }

    /// Stops the VM and waits for its vCPU threads; a VM that already ended keeps its outcome.
    public func stop(reason: String = "stopped by operator") {
        if control.stop(reason: reason) { logger.info("VM stopped", metadata: ["reason": "\(reason)"]) }
    }

    /// Ends the VM as `failed` (if it has not ended) and waits for its vCPU threads:
    /// for failures outside the guest, such as the event store breaking.
    public func fail(reason: String) {
        control.finish(.fail(reason: reason))
        control.stop(reason: reason)
        logger.warning("VM failed", metadata: ["reason": "\(reason)"])
    }

    /// Waits until the VM has ended; false if `timeout` passed first.
    public func waitUntilFinished(timeout: Duration? = nil) -> Bool {
        let deadline = timeout.map {
            Date(timeIntervalSinceNow: Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)
        }
        return control.waitUntilFinished(deadline: deadline)
    }

    /// The retained console output (the last `consoleCapacity` bytes).
    public var consoleOutput: [UInt8] { console.contents }

    /// Console bytes from absolute offset `offset` on (see `ConsoleRing.read`).
    public func console(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) { console.read(from: offset) }

    /// Ends the live console stream once the VM has ended (waits briefly for a reading consumer).
    public func finishConsoleStream() { console.finishStream() }

    /// Live console bytes dropped because the consumer (stdout) was too slow or went away.
    public var droppedConsoleBytes: Int { console.droppedStreamBytes }

    /// Console bytes the guest has written in all.
    public var consoleBytes: Int { console.totalBytes }

    /// KVM_RUN exits of all vCPUs by kind.
    public var exitCounts: [(kind: String, count: UInt64)] { exits.snapshot }

    /// The host's view of this VM's memory.
    public var memory: GuestMemoryView { GuestMemoryView(engine: engine) }

    /// Reads guest memory as the guest currently sees it (host-side inspection, tests).
    public func readMemory(at gpa: UInt64, count: Int) -> [UInt8] {
        memory.read(gpa: gpa, count: count) ?? []
    }

    /// Writes the counts of events beyond the recording budget that are still open (at the VM's end).
    public func flushAggregates() { engine.flushAggregates() }

    /// Frees the guest's RAM once it has ended; its page-state map, statistics and console stay.
    public func releaseMemory() throws(KVMError) { try stores.release() }

    public var pageStates: PageStateMap { engine.pageStates }
    public var statistics: ConversionStatistics { engine.statistics }

    /// Time spent inside KVM: KVM_RUN on all vCPUs, and the memory ioctls and discards.
    public var kvmTime: (runNanos: UInt64, memoryNanos: UInt64) { (runTimer.nanos, memoryOps.elapsedNanos) }

    deinit {
        control.stop(reason: "VM destroyed")
        // Lets the stream's thread end without waiting on a consumer.
        console.finishStream(timeout: .zero)
    }
}
