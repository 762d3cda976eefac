import KVM
import Logging

/// One vCPU's exit loop. Runs on the vCPU's own thread until the VM ends,
/// the vCPU halts, or an exit cannot be handled.
struct VCPURunner: Sendable {
    let vcpu: VCPU
    let control: VMControl
    let console: ConsoleOutput
    let hypercallHandler: HypercallHandler?
    let logger: Logger

    func run() {
        vcpu.kicker.bindCurrentThread()
        defer {
            console.flush(vcpu: Int(vcpu.index))
            vcpu.kicker.unbindThread()
            control.threadEnded()
        }
        guard control.checkpoint() else { return }
        while true {
            let exit: VCPUExit
            do {
                exit = try vcpu.run()
            } catch {
                control.finish(.fail(reason: "vCPU \(vcpu.index): \(error)"))
                return
            }
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
                case .sync, .mapGPARange, .unhandled:
                    fail(exit)
                    return
                }
            case .interrupted:
                vcpu.kicker.clear()
                guard control.checkpoint() else { return }
            case .hlt:
                logger.debug("vCPU halted", metadata: ["vcpu": "\(vcpu.index)"])
                return
            case .shutdown:
                let rip = (try? vcpu.registers().rip).map { " at rip 0x" + String($0, radix: 16) } ?? ""
                control.finish(.crash(reason: "vCPU \(vcpu.index) triple-faulted (KVM_EXIT_SHUTDOWN)\(rip)"))
                return
            case .hypercall(let call):
                guard let hypercallHandler else { fail(exit); return }
                vcpu.completeHypercall(returning: hypercallHandler.handle(call, vcpu.index))
            case .mmio, .memoryFault, .internalError, .failEntry, .systemEvent, .unsupported:
                fail(exit)
                return
            }
        }
    }

    private func fail(_ exit: VCPUExit) {
        let rip = (try? vcpu.registers().rip).map { " at rip 0x" + String($0, radix: 16) } ?? ""
        let reason = "vCPU \(vcpu.index): unhandled exit: \(exit)\(rip)"
        logger.error("\(reason)")
        control.finish(.fail(reason: reason))
    }
}

/// Answers hypercall exits; returns the value the guest reads in RAX.
public struct HypercallHandler: Sendable {
    public let handle: @Sendable (HypercallExit, _ vcpu: UInt32) -> UInt64

    public init(_ handle: @escaping @Sendable (HypercallExit, _ vcpu: UInt32) -> UInt64) {
        self.handle = handle
    }
}
