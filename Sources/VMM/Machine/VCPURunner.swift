import KVM
import Logging
import MemoryModel

/// One vCPU's exit loop. Runs on the vCPU's own thread until the VM ends,
/// the vCPU halts, or an exit cannot be handled.
struct VCPURunner: Sendable {
    /// Consecutive KVM memory-fault exits on one page, with no other exit in
    /// between and the page already in the wanted state, before the VM is
    /// stopped: the guest is making no progress at all, so the page has no
    /// usable backing. (Wrong-alias MMIO accesses are completed by the agent and
    /// always make progress; they never count.)
    static let stuckFaultLimit = 16

    let vcpu: VCPU
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

    func run() {
        vcpu.kicker.bindCurrentThread()
        defer {
            console.flush(vcpu: Int(vcpu.index))
            vcpu.kicker.unbindThread()
            control.threadEnded()
        }
        guard control.checkpoint() else { return }
        var stuck = StuckFaults()
        while true {
            let exit: VCPUExit
            do {
                gate?.enter()
                defer { gate?.leave() }
                let start = MonotonicClock.nanos()
                exit = try vcpu.run()
                runNanos.add(MonotonicClock.nanos() - start)
                exits.count(exit, vcpu: Int(vcpu.index))
            } catch {
                control.finish(.fail(reason: "vCPU \(vcpu.index): \(error)"))
                return
            }
            if case .memoryFault = exit {} else { stuck = StuckFaults() }
            switch exit {
            case .io(let io):
                switch PortMap.route(io) {
                case .heartbeat:
                    continue
                case .consoleWrite:
                    console.write(vcpu.outData(of: io), vcpu: Int(vcpu.index))
                case .consoleStatus:
                    vcpu.completeIn(io, value: PortMap.lineStatusIdle)
                case .exit(let status):
                    control.finish(.guestExited(status: status))
                    return
                case .mapGPARange:
                    guard mapGPARangeThroughPort() else { return }
                case .sync(let point):
                    guard sync(point: point) else { return }
                case .unhandled:
                    fail(exit)
                    return
                }
            case .interrupted:
                vcpu.kicker.clear()
                guard control.checkpoint() else { return }
            case .mmio(let mmio):
                guard let access = engine.backend.aliasAccess(at: mmio.address) else { fail(exit); return }
                guard resolve(GuestFault(range: access.page, wantsPrivate: access.viaPrivateAddress, source: .emulated),
                              retried: false, stuck: &stuck) else { return }
                complete(mmio, at: access.gpa, as: access.viaPrivateAddress ? .private : .shared)
            case .memoryFault(let fault):
                // Re-entering retries the access, so a fault that changes nothing may repeat: count those.
                guard resolve(Self.guestFault(fault, backend: engine.backend), retried: true, stuck: &stuck) else { return }
            case .hypercall(let call):
                guard call.number == Hypercall.mapGPARange else {
                    vcpu.completeHypercall(returning: GuestErrorCode.notSupported.raxValue)
                    continue
                }
                let outcome = engine.explicit(MapGPARangeCall(gpa: call.arg0, pageCount: call.arg1, attributes: call.arg2), vcpu: vcpu.index)
                if let fatal = outcome.fatal { control.finish(.fail(reason: fatal)); return }
                vcpu.completeHypercall(returning: outcome.raxValue)
            case .hlt:
                logger.debug("vCPU halted", metadata: ["vcpu": "\(vcpu.index)"])
                return
            case .shutdown:
                control.finish(.crash(reason: "vCPU \(vcpu.index) triple-faulted (KVM_EXIT_SHUTDOWN)\(ripSuffix())"))
                return
            case .internalError, .failEntry, .systemEvent, .unsupported:
                fail(exit)
                return
            }
        }
    }

    /// A KVM_EXIT_MEMORY_FAULT as the engine sees it. Under the alias backend
    /// (hosts where a closed page fails KVM_RUN with memory_fault data) the GPA
    /// names the alias the guest used, as an MMIO exit would.
    static func guestFault(_ fault: MemoryFaultExit, backend: MemoryBackend) -> GuestFault {
        if let access = backend.aliasAccess(at: fault.gpa) {
            return GuestFault(range: access.page, wantsPrivate: access.viaPrivateAddress, source: .kvm)
        }
        // KVM's numbers, but never trusted not to overflow: saturate at the last page boundary.
        let lastBoundary = UInt64.max & ~(PageRange.pageSize - 1)
        let (end, overflow) = fault.gpa.addingReportingOverflow(max(fault.size, 1))
        let roundedEnd = overflow || end > lastBoundary ? lastBoundary : end.roundedUp(to: PageRange.pageSize)
        let range = PageRange(start: fault.gpa & ~(PageRange.pageSize - 1), end: roundedEnd)
        return GuestFault(range: range, wantsPrivate: fault.isPrivate, source: .kvm)
    }

    /// Runs the fault through the engine; false when the vCPU must stop.
    /// `retried`: the guest retries the access on re-entry (false: the agent completed it).
    private func resolve(_ fault: GuestFault, retried: Bool, stuck: inout StuckFaults) -> Bool {
        switch engine.fault(fault, vcpu: vcpu.index) {
        case .resume(let wasSpurious):
            guard retried else { return true }
            guard wasSpurious else { stuck = StuckFaults(); return true }
            stuck.count(page: fault.range.start)
            guard stuck.count < Self.stuckFaultLimit else {
                control.finish(.fault(reason: "vCPU \(vcpu.index): \(stuck.count) memory faults in a row at gpa 0x\(String(fault.range.start, radix: 16)) with no other exit, the page already \(fault.wantsPrivate ? "private" : "shared"): it has no usable backing"))
                return false
            }
            return true
        case .stopVM(let reason):
            control.finish(.fault(reason: "vCPU \(vcpu.index): \(reason)"))
            return false
        case .failVM(let reason):
            control.finish(.fail(reason: "vCPU \(vcpu.index): \(reason)"))
            return false
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

    /// `OUT 0xEB` with RAX = 12, RBX = gpa, RCX = npages, RDX = attributes; result in RAX.
    private func mapGPARangeThroughPort() -> Bool {
        guard var regs = readRegisters() else { return false }
        if regs.rax == Hypercall.mapGPARange {
            let outcome = engine.explicit(MapGPARangeCall(gpa: regs.rbx, pageCount: regs.rcx, attributes: regs.rdx), vcpu: vcpu.index)
            if let fatal = outcome.fatal { control.finish(.fail(reason: fatal)); return false }
            regs.rax = outcome.raxValue
        } else {
            regs.rax = GuestErrorCode.notSupported.raxValue
        }
        return writeRegisters(regs)
    }

    /// `OUT 0xEA` with EAX = point, RBX/RCX/RDX/RSI = arguments; the host's answer goes to RAX.
    private func sync(point: UInt32) -> Bool {
        guard var regs = readRegisters() else { return false }
        let request = SyncRequest(vcpu: vcpu.index, point: point, arguments: [regs.rbx, regs.rcx, regs.rdx, regs.rsi])
        regs.rax = syncHandler?.handle(request, GuestMemoryView(engine: engine)) ?? 0
        return writeRegisters(regs)
    }

    private func readRegisters() -> Registers? {
        if registerSync { return vcpu.syncedRegisters }
        do {
            return try vcpu.registers()
        } catch {
            control.finish(.fail(reason: "vCPU \(vcpu.index): \(error)"))
            return nil
        }
    }

    private func writeRegisters(_ regs: Registers) -> Bool {
        if registerSync {
            vcpu.setSyncedRegisters(regs)
            return true
        }
        do {
            try vcpu.setRegisters(regs)
            return true
        } catch {
            control.finish(.fail(reason: "vCPU \(vcpu.index): \(error)"))
            return false
        }
    }

    private func ripSuffix() -> String {
        (try? vcpu.registers().rip).map { " at rip 0x" + String($0, radix: 16) } ?? ""
    }

    /// A guest can cause these at will: the VM's end carries the reason; the log only at debug.
    private func fail(_ exit: VCPUExit) {
        let reason = "vCPU \(vcpu.index): unhandled exit: \(exit)\(ripSuffix())"
        logger.debug("\(reason)")
        control.finish(.fail(reason: reason))
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

/// Nanoseconds a VM's vCPUs spent inside KVM_RUN.
final class RunTimer: Sendable {
    private let total = Atomic<UInt64>(0)
    func add(_ nanos: UInt64) { total.add(nanos, ordering: .relaxed) }
    var nanos: UInt64 { total.load(ordering: .relaxed) }
}

import Synchronization

/// KVM_RUN exits by kind, for metrics: one counter set per vCPU, so the lock is never contended.
final class ExitCounters: Sendable {
    static let kinds = ["io", "mmio", "hlt", "shutdown", "hypercall", "memory_fault", "internal_error", "fail_entry",
                        "system_event", "interrupted", "unsupported"]
    private final class Counters: Sendable {
        let values = Mutex([UInt64](repeating: 0, count: ExitCounters.kinds.count))
    }
    private let perVCPU: [Counters]

    init(vcpus: Int) {
        perVCPU = (0..<max(vcpus, 1)).map { _ in Counters() }
    }

    private static func index(_ exit: VCPUExit) -> Int {
        switch exit {
        case .io: 0
        case .mmio: 1
        case .hlt: 2
        case .shutdown: 3
        case .hypercall: 4
        case .memoryFault: 5
        case .internalError: 6
        case .failEntry: 7
        case .systemEvent: 8
        case .interrupted: 9
        case .unsupported: 10
        }
    }

    func count(_ exit: VCPUExit, vcpu: Int) {
        let index = Self.index(exit)
        perVCPU[vcpu % perVCPU.count].values.withLock { $0[index] &+= 1 }
    }

    var snapshot: [(kind: String, count: UInt64)] {
        var totals = [UInt64](repeating: 0, count: Self.kinds.count)
        for counters in perVCPU {
            counters.values.withLock { for (index, value) in $0.enumerated() { totals[index] &+= value } }
        }
        return zip(Self.kinds, totals).map { ($0, $1) }
    }
}
