import Foundation
import KVM
import Logging
import VMM

/// What this host can run, read once per test process (capabilities, the hypercall and
/// closed-page probes) as the agent would read it, `MEMGATE_KVM_HIDE` included. Every suite
/// asks here, never the machine it was written on: a test that needs what the host lacks is
/// skipped by name, and one whose area has a fallback asserts the fallback.
public struct HostCapabilities: Sendable {
    public static let current = HostCapabilities.read()

    /// The host report, or nil when KVM cannot be opened (see `unavailableReason`).
    public let report: HostReport?
    /// Why there is no report: /dev/kvm missing or not read-write, or the mask refused.
    public let unavailableReason: String?

    public var kvm: Bool { report != nil }
    public var capabilities: CapabilityReport? { report?.capabilities }
    public var hidden: [String] { capabilities?.hidden ?? [] }

    /// The attributes backend runs here (a VM type with private memory, guest_memfd, USER_MEMORY2, MEMORY_FAULT_INFO).
    public var attributesBackend: Bool { report?.backends.first { $0.name == .attributes }?.usable == true }
    /// Why the attributes backend does not run here, in the host's own terms (without the mask's suffix).
    public var attributesBackendReason: String {
        guard var caps = capabilities else { return unavailableReason ?? "no KVM" }
        caps.hidden = []
        return HostReport.backends(for: caps).first { $0.name == .attributes }?.reason ?? "not reported"
    }
    /// KVM makes guest_memfd files the host can map: the alias backend's private store is guest_memfd.
    public var mmapGuestMemfd: Bool {
        guard let caps = capabilities else { return false }
        return caps.guestMemfd && caps.guestMemfdFlags & GuestMemfdFlag.mmap != 0
    }
    /// Guests convert through VMCALL (KVM_EXIT_HYPERCALL for MAP_GPA_RANGE) rather than the PV port.
    public var conversionTransport: ConversionTransport { report?.conversionTransport ?? .port }

    static func read() -> HostCapabilities {
        let capabilities = probe()
        CapabilityLedger.recordAvailability(capabilities)
        return capabilities
    }

    private static func probe() -> HostCapabilities {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else {
            let missing = access("/dev/kvm", F_OK) != 0
            return HostCapabilities(
                report: nil, unavailableReason: missing ? "no /dev/kvm" : "/dev/kvm is not read-write")
        }
        let logger = Logger(label: "test.host-capabilities") { _ in SwiftLogNoOpLogHandler() }
        do throws(KVMError) {
            return HostCapabilities(
                report: HostReport.probe(system: try KVM.System(), logger: logger), unavailableReason: nil)
        } catch {
            return HostCapabilities(report: nil, unavailableReason: "\(error)")
        }
    }
}
