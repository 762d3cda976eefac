import Foundation
import KVM
import Logging
import Synchronization

/// What a guest access to a closed (`PROT_NONE`) page of a memslot did on this host.
public enum AliasProbeOutcome: String, Sendable, Codable, CaseIterable {
    /// KVM_EXIT_MMIO at the exact GPA, as for an unmapped GPA (this project's machines).
    case mmioExit = "mmio_exit"
    /// KVM_RUN failed with EFAULT and KVM filled `memory_fault` (KVM_EXIT_MEMORY_FAULT).
    case memoryFaultExit = "memory_fault_exit"
    /// KVM_RUN failed without saying where (EFAULT, no memory_fault data).
    case runFailed = "run_failed"
    /// The access went through: the host's protections do not reach KVM's mappings.
    case noExit = "no_exit"
    /// The probe VM could not be built or did not finish.
    case unavailable

    /// The mechanism VMs get: `protect` only where a closed page reliably comes back to the agent with its address.
    public var mechanism: AliasMechanism {
        switch self {
        case .mmioExit, .memoryFaultExit: .protect
        case .runFailed, .noExit, .unavailable: .memslot
        }
    }
}

public struct AliasProbeResult: Sendable, Codable, Equatable {
    public var outcome: AliasProbeOutcome
    public var mechanism: AliasMechanism
    public var detail: String

    public init(outcome: AliasProbeOutcome, detail: String) {
        self.outcome = outcome
        self.mechanism = outcome.mechanism
        self.detail = detail
    }
}

/// Runs a tiny guest under the `protect` mechanism that reads the shared alias
/// of a private page, to learn whether a closed page exits to the agent here.
public enum AliasProbe {
    static let probeExitStatus: Int32 = 7
    /// Data RAM of the probe VM starts at 2 MiB (its boot region is one large page).
    static let probedAddress: UInt64 = 0x20_0000 | (1 << UInt64(VMConfiguration(name: "").sharedBit))

    static var code: [UInt8] {
        [0x48, 0xA1] + probedAddress.littleEndianBytes  // mov rax, [probedAddress]
            + [
                0xBA, 0xF4, 0x00, 0x00, 0x00,  // mov edx, 0xF4 (MG_PORT_EXIT)
                0xB8, 0x07, 0x00, 0x00, 0x00,  // mov eax, 7
                0xEF,  // out dx, eax
                0xEB, 0xFE,
            ]  // jmp $
    }

    public static func run(system: KVM.System, deadline: Duration = .seconds(2), logger: Logger) -> AliasProbeResult {
        let bytes = code
        let image = GuestImage(
            segments: [
                .init(
                    address: BootLayout.imageBase, bytes: bytes,
                    memorySize: UInt64(bytes.count), executable: true)
            ],
            entry: BootLayout.imageBase)
        var configuration = VMConfiguration(name: "alias-probe")
        configuration.memoryBytes = 4 << 20
        configuration.backend = .alias
        configuration.aliasMechanism = .protect
        let vm: VirtualMachine
        do {
            vm = try VirtualMachine(system: system, configuration: configuration, image: image, logger: logger)
            guard vm.layout.dataRAM.lowerBound == probedAddress & ~vm.layout.sharedMask else {
                return AliasProbeResult(
                    outcome: .unavailable,
                    detail: "probe layout: data RAM starts at 0x\(String(vm.layout.dataRAM.lowerBound, radix: 16))")
            }
            try vm.start()
        } catch {
            return AliasProbeResult(outcome: .unavailable, detail: "\(error)")
        }
        guard vm.waitUntilFinished(timeout: deadline) else {
            vm.stop(reason: "alias probe deadline")
            return AliasProbeResult(outcome: .unavailable, detail: "the probe guest did not finish within \(deadline)")
        }
        return classify(exitStatus: vm.lifecycle.exitStatus, failure: vm.lifecycle.reason, statistics: vm.statistics)
    }

    /// Pure: what the probe VM's end says about this host.
    static func classify(exitStatus: Int32?, failure: String?, statistics: ConversionStatistics) -> AliasProbeResult {
        let converted = statistics.total(decision: .applied, trigger: .implicit) == 1
        guard exitStatus == probeExitStatus else {
            return AliasProbeResult(outcome: .runFailed, detail: failure ?? "the probe guest did not exit")
        }
        if converted && statistics.faults[.emulated] == 1 {
            return AliasProbeResult(
                outcome: .mmioExit, detail: "an access to a PROT_NONE page exited as KVM_EXIT_MMIO at its GPA")
        }
        if converted && statistics.faults[.kvm] == 1 {
            return AliasProbeResult(
                outcome: .memoryFaultExit,
                detail: "an access to a PROT_NONE page failed KVM_RUN with KVM_EXIT_MEMORY_FAULT data")
        }
        return AliasProbeResult(outcome: .noExit, detail: "an access to a PROT_NONE page completed without an exit")
    }

    private static let cache = Mutex<AliasProbeResult?>(nil)

    /// The probe's result for this process, run once on first use.
    public static func cached(system: KVM.System, logger: Logger) -> AliasProbeResult {
        cache.withLock { cached in
            if let cached { return cached }
            let result = run(system: system, logger: logger)
            cached = result
            return result
        }
    }
}
