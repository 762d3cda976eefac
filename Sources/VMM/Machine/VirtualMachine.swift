import Foundation
import KVM
import Logging

/// A running (or runnable) guest: KVM VM, RAM, vCPU threads, console, lifecycle.
///
/// Every failure of the guest — a triple fault, an unhandled exit, a KVM error
/// on one of its vCPUs — ends this VM only; nothing here touches the process
/// or other VMs.
public final class VirtualMachine: Sendable {
    public let configuration: VMConfiguration
    public let layout: BootLayout
    let kvmVM: KVM.VM
    private let memory: HostMemory
    let vcpus: [VCPU]
    private let control: VMControl
    private let console: ConsoleOutput
    private let hypercallHandler: HypercallHandler?
    private let logger: Logger

    public var name: String { configuration.name }

    public init(system: KVM.System, configuration: VMConfiguration, image: GuestImage, logger: Logger,
                consoleStream: (@Sendable ([UInt8]) -> Void)? = nil,
                hypercallHandler: HypercallHandler? = nil) throws(VMCreationError) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "vm"] = "\(configuration.name)"
        self.logger = logger
        self.hypercallHandler = hypercallHandler
        console = ConsoleOutput(capacity: configuration.consoleCapacity, vcpuCount: configuration.vcpuCount,
                                stream: consoleStream)

        do {
            let cpuid = try system.supportedCPUID()
            layout = try Self.makeLayout(configuration, image: image, cpuid: cpuid)
            let vm = try system.createVM(type: .default)
            kvmVM = vm
            try vm.setTSSAddress(0xFFFB_D000)
            if configuration.enableHypercallExit, vm.check(.exitHypercall) & (1 << Int32(Hypercall.mapGPARange)) != 0 {
                try vm.enable(.exitHypercall, args: [1 << Hypercall.mapGPARange])
            }
            memory = try HostMemory.anonymous(size: Int(layout.ramSize))
            try vm.setMemoryRegion(slot: 0, guestPhysicalAddress: 0, size: layout.ramSize, memory: memory)
            try Self.loadBootImage(image, layout: layout, configuration: configuration, into: memory)
            var vcpus: [VCPU] = []
            for index in 0..<configuration.vcpuCount {
                let vcpu = try vm.createVCPU(index: UInt32(index))
                try vcpu.setCPUID(cpuid)
                try LongModeCPU.configure(vcpu, entry: image.entry, stackTop: layout.stackTop(vcpu: index),
                                          bootInfo: layout.bootInfoAddress(vcpu: index))
                vcpus.append(vcpu)
            }
            self.vcpus = vcpus
        } catch let error as KVMError {
            throw .kvm(error)
        } catch let error as BootError {
            throw .layout(error)
        } catch {
            fatalError("unexpected error type: \(error)")
        }
        control = VMControl(kickers: vcpus.map(\.kicker))
        logger.info("VM created", metadata: [
            "memory": "\(layout.ramSize)", "vcpus": "\(configuration.vcpuCount)",
            "boot_region": "\(layout.bootRegionSize)", "data_ram": "\(layout.dataRAM)",
        ])
    }

    private static func makeLayout(_ configuration: VMConfiguration, image: GuestImage,
                                   cpuid: CPUIDTable) throws(BootError) -> BootLayout {
        try BootInfo.validate(commandLine: configuration.commandLine)
        return try BootLayout(ramSize: configuration.memoryBytes, vcpuCount: configuration.vcpuCount,
                              sharedBit: configuration.sharedBit, imageEnd: image.end,
                              physicalAddressBits: cpuid.physicalAddressBits ?? 36)
    }

    /// Copies the image, GDT, page tables and boot infos into RAM.
    private static func loadBootImage(_ image: GuestImage, layout: BootLayout, configuration: VMConfiguration,
                                      into memory: HostMemory) throws(BootError) {
        for segment in image.segments { memory.write(segment.bytes, at: Int(segment.address)) }
        memory.write(GDT.bytes(tssBase: BootLayout.tssAddress), at: Int(BootLayout.gdtAddress))
        memory.write(try PageTables.build(for: layout), at: Int(BootLayout.pageTablesAddress))
        for index in 0..<layout.vcpuCount {
            let info = BootInfo(layout: layout, vcpu: index, transport: configuration.transport,
                                dataInitiallyShared: configuration.dataInitiallyShared,
                                commandLine: configuration.commandLine)
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
            let runner = VCPURunner(vcpu: vcpu, control: control, console: console,
                                    hypercallHandler: hypercallHandler, logger: logger)
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

    /// Waits until the VM has ended; false if `timeout` passed first.
    public func waitUntilFinished(timeout: Duration? = nil) -> Bool {
        let deadline = timeout.map { Date(timeIntervalSinceNow: Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) }
        return control.waitUntilFinished(deadline: deadline)
    }

    /// The retained console output (the last `consoleCapacity` bytes).
    public var consoleOutput: [UInt8] { console.contents }

    /// Reads guest RAM (host-side inspection, tests).
    public func readMemory(at gpa: UInt64, count: Int) -> [UInt8] {
        memory.read(at: Int(gpa), count: count)
    }

    deinit {
        control.stop(reason: "VM destroyed")
    }
}
