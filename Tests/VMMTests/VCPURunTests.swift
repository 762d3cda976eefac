import KVM
import TestSupport
import Testing

@testable import VMM

/// Drives one vCPU of a booted but not started VM by hand (no vCPU threads):
/// port exits, registers, sync regs and kicks on the real /dev/kvm.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct VCPURunTests {
    func bootedVCPU(_ guest: String, commandLine: String = "") throws -> (VirtualMachine, VCPU) {
        let vm = try VirtualMachineTests().makeVM(guest, commandLine: commandLine)
        return (vm, vm.vcpus[0])
    }

    /// hello's first exit is the first byte of `rep outsb` to COM1.
    @Test func firstExitIsTheConsoleByteWithRegisters() throws {
        let (vm, vcpu) = try bootedVCPU("hello")
        let exit = try vcpu.run()
        guard case .io(let io) = exit else {
            Issue.record("expected an I/O exit, got \(exit)")
            return
        }
        #expect(io.port == 0x3F8 && io.direction == .out && io.size == 1 && io.value == UInt64(UInt8(ascii: "h")))
        #expect(vcpu.outData(of: io) == [UInt8(ascii: "h")])
        let regs = try vcpu.registers()
        #expect(regs.rdx & 0xFFFF == 0x3F8)
        #expect(regs.rip >= BootLayout.imageBase && regs.rip < vm.layout.bootRegionSize)
        let sregs = try vcpu.specialRegisters()
        #expect(sregs.efer & 0x400 != 0 && sregs.cs.long)  // LMA: really in 64-bit mode
    }

    // Needs KVM_CAP_SYNC_REGS with the general-purpose registers; without it the runner reads them by ioctl.
    @Test(
        .enabled(
            if: (HostCapabilities.current.capabilities?.syncRegsMask ?? 0) & 1 != 0,
            "requires KVM_CAP_SYNC_REGS with KVM_SYNC_X86_REGS; this host lacks it or MEMGATE_KVM_HIDE hides it"))
    func syncRegsReadAndWriteWithoutIoctls() throws {
        let (vm, vcpu) = try bootedVCPU("hello")
        defer { withExtendedLifetime(vm) {} }  // the VM owns the RAM this vCPU runs in
        let hostMask = HostCapabilities.current.capabilities?.syncRegsMask ?? 0
        try #require(vcpu.enableRegisterSync(hostMask: hostMask), "KVM_CAP_SYNC_REGS mask \(hostMask)")
        guard case .io = try vcpu.run() else {
            Issue.record("expected an I/O exit")
            return
        }
        var synced = vcpu.syncedRegisters
        #expect(synced == (try vcpu.registers()))
        #expect(synced.rdx & 0xFFFF == 0x3F8)
        // Redirect the rest of `rep outsb` to the heartbeat port through the synced registers.
        synced.rdx = 0x80
        vcpu.setSyncedRegisters(synced)
        guard case .io(let next) = try vcpu.run() else {
            Issue.record("expected an I/O exit")
            return
        }
        #expect(next.port == 0x80 && next.value == UInt64(UInt8(ascii: "e")))
    }

    /// A kick that lands before KVM_RUN is not lost: immediate_exit makes the next run return EINTR.
    @Test func kickBeforeRunIsNotLost() throws {
        let (vm, vcpu) = try bootedVCPU("spin-io", commandLine: "forever")
        defer { withExtendedLifetime(vm) {} }
        vcpu.kicker.kick()
        #expect(try vcpu.run() == .interrupted)
        vcpu.kicker.clear()
        guard case .io(let io) = try vcpu.run() else {
            Issue.record("expected a heartbeat")
            return
        }
        #expect(io.port == 0x80)
    }
}
