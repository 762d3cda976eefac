import KVM
import Logging
import MemoryModel
import Platform

/// What the exit loop needs of a vCPU: the real `VCPU`, or a recording fake in tests.
/// Used by one thread at a time (the vCPU's own).
protocol VCPUChannel: AnyObject, Sendable {
    var index: UInt32 { get }
    func run() throws(KVMError) -> VCPUExit
    func outData(of io: IOExit) -> [UInt8]
    func completeIn(_ io: IOExit, value: UInt64)
    func completeMMIORead(value: UInt64)
    func completeHypercall(returning value: UInt64)
    func registers() throws(KVMError) -> Registers
    func setRegisters(_ registers: Registers) throws(KVMError)
    var syncedRegisters: Registers { get }
    func setSyncedRegisters(_ registers: Registers)
}

extension VCPU: VCPUChannel {}

/// One vCPU's exit loop. Runs on the vCPU's own thread until the VM ends,
/// the vCPU halts, or an exit cannot be handled. `handle` decides what each
/// exit means and returns the next step; `run` is the only place that ends the VM.
struct VCPURunner: Sendable {
    /// Consecutive KVM memory-fault exits on one page, with no other exit in
    /// between and the page already in the wanted state, before the VM is
    /// stopped: the guest is making no progress at all, so the page has no
    /// usable backing. (Wrong-alias MMIO accesses are completed by the agent and
    /// always make progress; they never count.)
    static let stuckFaultLimit = 16

    /// What happens after an exit.
    enum Step: Sendable, Equatable {
        /// Re-enter the guest.
        case resume
        /// This vCPU stops. With an event the VM ends that way; without one the VM goes on
        /// without this vCPU (it halted), or is already ending.
        case stop(VMTransition?)
    }

    let vcpu: VCPUChannel
    /// Kicks this vCPU out of KVM_RUN (nil in tests that drive `handle` directly).
    let kicker: VCPUKicker?
    let control: VMControl
    let console: ConsoleOutput
    let engine: ConversionEngine
    let syncHandler: SyncHandler?
    /// KVM syncs general-purpose registers into kvm_run (no ioctl per PV call).
    let registerSync: Bool
    /// Brackets KVM_RUN when memslot rewrites must hold this vCPU outside (memslot mechanism, several vCPUs).
    let gate: RunGate?
    let runNanos: RunTimer
    let exits: ExitCounters
    let logger: Logger

    var index: UInt32 { vcpu.index }

    func run() {
        kicker?.bindCurrentThread()
        defer {
            console.flush(vcpu: Int(index))
            kicker?.unbindThread()
            control.threadEnded()
        }
        guard control.checkpoint() else { return }
        var stuck = StuckFaults()
        while true {
            let step: Step
            do {
                step = handle(try enter(), stuck: &stuck)
            } catch {
                step = .stop(.fail(reason: "vCPU \(index): \(error)"))
            }
            guard case .stop(let event) = step else { continue }
            // The one place a vCPU ends its VM.
            if let event { control.finish(event) }
            return
        }
    }

    /// One KVM_RUN, timed and counted.
    private func enter() throws(KVMError) -> VCPUExit {
        gate?.enter()
        defer { gate?.leave() }
        let start = MonotonicClock.nanos()
        let exit = try vcpu.run()
        runNanos.add(MonotonicClock.nanos() - start)
        exits.count(exit.kind, vcpu: Int(index))
        return exit
    }

    /// What `exit` means for this vCPU and its VM. `stuck` tracks retried faults that changed nothing.
    func handle(_ exit: VCPUExit, stuck: inout StuckFaults) -> Step {
        if case .memoryFault = exit {} else { stuck = StuckFaults() }
        switch exit {
        case .io(let io):
            switch PortMap.route(io) {
            case .heartbeat:
                return .resume
            case .consoleWrite:
                console.write(vcpu.outData(of: io), vcpu: Int(index))
                return .resume
            case .consoleStatus:
                vcpu.completeIn(io, value: PortMap.lineStatusIdle)
                return .resume
            case .exit(let status):
                return .stop(.guestExited(status: status))
            case .mapGPARange:
                return mapGPARangeThroughPort()
            case .sync(let point):
                return sync(point: point)
            case .unhandled:
                return unhandled(exit)
            }
        case .interrupted:
            kicker?.clear()
            return control.checkpoint() ? .resume : .stop(nil)
        case .mmio(let mmio):
            guard let access = engine.backend.aliasAccess(at: mmio.address) else { return unhandled(exit) }
            let step = resolve(
                GuestFault(
                    range: access.page, wantsPrivate: access.viaPrivateAddress, source: .emulated,
                    access: mmio.isWrite ? .write : .read),
                retried: false, stuck: &stuck)
            if step == .resume { complete(mmio, at: access.gpa, as: access.viaPrivateAddress ? .private : .shared) }
            return step
        case .memoryFault(let fault):
            // Re-entering retries the access, so a fault that changes nothing may repeat: count those.
            return resolve(Self.guestFault(fault, backend: engine.backend), retried: true, stuck: &stuck)
        case .hypercall(let call):
            guard call.number == Hypercall.mapGPARange else {
                vcpu.completeHypercall(returning: GuestErrorCode.notSupported.raxValue)
                return .resume
            }
            let outcome = engine.explicit(
                MapGPARangeCall(gpa: call.arg0, pageCount: call.arg1, attributes: call.arg2), vcpu: index)
            if let fatal = outcome.fatal { return .stop(.fail(reason: "vCPU \(index): \(fatal)")) }
            vcpu.completeHypercall(returning: outcome.raxValue)
            return .resume
        case .hlt:
            logger.debug("vCPU halted", metadata: ["vcpu": "\(index)"])
            return .stop(nil)
        case .shutdown:
            return .stop(.crash(reason: "vCPU \(index) triple-faulted (KVM_EXIT_SHUTDOWN)\(ripSuffix())"))
        case .internalError, .failEntry, .systemEvent, .unsupported:
            return unhandled(exit)
        }
    }

    /// A KVM_EXIT_MEMORY_FAULT as the engine sees it. Under the alias backend
    /// (hosts where a closed page fails KVM_RUN with memory_fault data) the GPA
    /// names the alias the guest used, as an MMIO exit would.
    static func guestFault(_ fault: MemoryFaultExit, backend: MemoryBackend) -> GuestFault {
        if let access = backend.aliasAccess(at: fault.gpa) {
            return GuestFault(
                range: access.page, wantsPrivate: access.viaPrivateAddress, source: .kvm,
                access: FaultAccess(flags: fault.flags))
        }
        // KVM's numbers, but never trusted not to overflow: saturate at the last page boundary.
        let lastBoundary = UInt64.max & ~(PageRange.pageSize - 1)
        let (end, overflow) = fault.gpa.addingReportingOverflow(max(fault.size, 1))
        let roundedEnd = overflow || end > lastBoundary ? lastBoundary : end.roundedUp(to: PageRange.pageSize)
        let range = PageRange(start: fault.gpa & ~(PageRange.pageSize - 1), end: roundedEnd)
        return GuestFault(
            range: range, wantsPrivate: fault.isPrivate, source: .kvm, access: FaultAccess(flags: fault.flags))
    }

    /// Runs the fault through the engine.
    /// `retried`: the guest retries the access on re-entry (false: the agent completed it).
    private func resolve(_ fault: GuestFault, retried: Bool, stuck: inout StuckFaults) -> Step {
        switch engine.fault(fault, vcpu: index) {
        case .resume(let wasSpurious):
            guard retried else { return .resume }
            guard wasSpurious else {
                stuck = StuckFaults()
                return .resume
            }
            stuck.count(page: fault.range.start)
            guard stuck.count < Self.stuckFaultLimit else {
                return .stop(
                    .fault(
                        reason:
                            "vCPU \(index): \(stuck.count) memory faults in a row at gpa 0x\(String(fault.range.start, radix: 16)) with no other exit, the page already \(fault.wantsPrivate ? "private" : "shared"): it has no usable backing"
                    ))
            }
            return .resume
        case .stopVM(let reason):
            return .stop(.fault(reason: "vCPU \(index): \(reason)"))
        case .failVM(let failure):
            return .stop(.fail(reason: "vCPU \(index): \(failure)"))
        }
    }

    /// Completes a wrong-alias access against the store the page now lives in.
    private func complete(_ mmio: MMIOExit, at gpa: UInt64, as state: PageState) {
        let length = Int(min(mmio.length, 8))
        if mmio.isWrite {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: mmio.data >> (8 * UInt64($0))) }
            _ = engine.backend.write(bytes, gpa: gpa, as: state)
        } else {
            let bytes = engine.backend.read(gpa: gpa, count: length, as: state) ?? []
            let value = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            vcpu.completeMMIORead(value: value)
        }
    }

    /// `OUT 0xEB` with RAX = KVM_HC_MAP_GPA_RANGE, RBX = gpa, RCX = npages, RDX = attributes; result in RAX.
    private func mapGPARangeThroughPort() -> Step {
        withRegisters { regs in
            guard regs.rax == Hypercall.mapGPARange else {
                regs.rax = GuestErrorCode.notSupported.raxValue
                return .resume
            }
            let outcome = engine.explicit(
                MapGPARangeCall(gpa: regs.rbx, pageCount: regs.rcx, attributes: regs.rdx), vcpu: index)
            if let fatal = outcome.fatal { return .stop(.fail(reason: "vCPU \(index): \(fatal)")) }
            regs.rax = outcome.raxValue
            return .resume
        }
    }

    /// `OUT 0xEA` with EAX = point, RBX/RCX/RDX/RSI = arguments; the host's answer goes to RAX.
    private func sync(point: UInt32) -> Step {
        withRegisters { regs in
            let request = SyncRequest(vcpu: index, point: point, arguments: [regs.rbx, regs.rcx, regs.rdx, regs.rsi])
            regs.rax = syncHandler?.handle(request, GuestMemoryView(engine: engine)) ?? 0
            return .resume
        }
    }

    /// Reads the registers, lets `body` change them, and writes them back when it resumes the guest.
    private func withRegisters(_ body: (inout Registers) -> Step) -> Step {
        do throws(KVMError) {
            var regs = registerSync ? vcpu.syncedRegisters : try vcpu.registers()
            let step = body(&regs)
            guard step == .resume else { return step }
            if registerSync { vcpu.setSyncedRegisters(regs) } else { try vcpu.setRegisters(regs) }
            return .resume
        } catch {
            return .stop(.fail(reason: "vCPU \(index): \(error)"))
        }
    }

    private func ripSuffix() -> String {
        (try? vcpu.registers().rip).map { " at rip 0x" + String($0, radix: 16) } ?? ""
    }

    /// A guest can cause these at will: the VM's end carries the reason; the log only at debug.
    private func unhandled(_ exit: VCPUExit) -> Step {
        let reason = "vCPU \(index): unhandled exit: \(exit)\(ripSuffix())"
        logger.debug("\(reason)")
        return .stop(.fail(reason: reason))
    }
}

/// The page of the last run of retried faults that changed nothing on one vCPU, and its length.
struct StuckFaults {
    var page: UInt64 = .max
    var count = 0

    mutating func count(page: UInt64) {
        if self.page == page { count += 1 } else { self = StuckFaults(page: page, count: 1) }
    }
}
