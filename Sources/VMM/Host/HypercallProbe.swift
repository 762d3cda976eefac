import Foundation
import KVM
import Logging

/// What happened when a guest issued VMCALL with KVM_HC_MAP_GPA_RANGE.
public enum HypercallProbeOutcome: String, Sendable, Codable {
    /// KVM_EXIT_HYPERCALL reached userspace: guests can use VMCALL.
    case exitsToUserspace = "exits_to_userspace"
    /// The guest continued without an exit (KVM answered in the kernel).
    case returnsInGuest = "returns_in_guest"
    /// No exit and no progress before the deadline (the vCPU spins).
    case spins
    /// The VM ended abnormally (e.g. #UD was not handled).
    case faults
    /// The probe VM could not be built.
    case unavailable

    /// Whether the guest SDK may use VMCALL for explicit conversions.
    public var vmcallUsable: Bool { self == .exitsToUserspace }
}

public struct HypercallProbeResult: Sendable, Codable, Equatable {
    public var outcome: HypercallProbeOutcome
    public var detail: String
}

/// Runs a tiny guest that issues one VMCALL(KVM_HC_MAP_GPA_RANGE) under a
/// deadline, to learn whether hypercall exits work on this host.
public enum HypercallProbe {
    /// The exit status the probe guest reports when VMCALL returned inside the guest.
    static let returnedStatus: Int32 = 7

    /// 64-bit code: map_gpa_range(0x200000, 1 page, to shared) via VMCALL, then exit(7).
    static let code: [UInt8] = [
        0xB8, UInt8(Hypercall.mapGPARange), 0x00, 0x00, 0x00,  // mov eax, KVM_HC_MAP_GPA_RANGE
        0xBB, 0x00, 0x00, 0x20, 0x00,  // mov ebx, 0x200000 (gpa)
        0xB9, 0x01, 0x00, 0x00, 0x00,  // mov ecx, 1 (npages)
        0x31, 0xD2,  // xor edx, edx (attrs: 4K, to shared)
        0x0F, 0x01, 0xC1,  // vmcall
        0xBA, 0xF4, 0x00, 0x00, 0x00,  // mov edx, 0xF4 (MG_PORT_EXIT)
        0xB8, 0x07, 0x00, 0x00, 0x00,  // mov eax, 7
        0xEF,  // out dx, eax
        0xEB, 0xFE,  // jmp $
    ]

    public static func run(system: KVM.System, deadline: Duration = .milliseconds(500), logger: Logger)
        -> HypercallProbeResult
    {
        let mask = UInt64(UInt32(bitPattern: system.check(.exitHypercall)))
        guard mask & (1 << Hypercall.mapGPARange) != 0 else {
            let why =
                system.hidden.hides(.exitHypercall)
                ? " (exit_hypercall is hidden by \(HiddenCapabilities.environmentVariable))" : ""
            return HypercallProbeResult(
                outcome: .unavailable, detail: "KVM_CAP_EXIT_HYPERCALL lacks KVM_HC_MAP_GPA_RANGE\(why)")
        }
        let image = GuestImage(
            segments: [
                .init(
                    address: BootLayout.imageBase, bytes: code,
                    memorySize: UInt64(code.count), executable: true)
            ],
            entry: BootLayout.imageBase)
        var configuration = VMConfiguration(name: "hypercall-probe")
        configuration.memoryBytes = 4 << 20
        configuration.enableHypercallExit = true
        configuration.backend = .alias
        let vm: VirtualMachine
        do {
            vm = try VirtualMachine(system: system, configuration: configuration, image: image, logger: logger)
            try vm.start()
        } catch {
            return HypercallProbeResult(outcome: .unavailable, detail: "\(error)")
        }
        let finished = vm.waitUntilFinished(timeout: deadline)
        if !finished { vm.stop(reason: "hypercall probe deadline") }
        let lifecycle = vm.lifecycle
        if vm.statistics.total(trigger: .explicit) > 0 {
            return HypercallProbeResult(outcome: .exitsToUserspace, detail: "VMCALL produced KVM_EXIT_HYPERCALL")
        }
        if !finished {
            return HypercallProbeResult(outcome: .spins, detail: "no exit within \(deadline) after VMCALL")
        }
        if lifecycle.exitStatus == returnedStatus {
            return HypercallProbeResult(
                outcome: .returnsInGuest, detail: "VMCALL returned to the guest without an exit")
        }
        return HypercallProbeResult(outcome: .faults, detail: lifecycle.reason ?? "VM \(lifecycle.state.rawValue)")
    }
}
