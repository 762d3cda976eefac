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
    /// The reason the attributes backend does not run here, for skip messages.
    public var attributesBackendReason: String {
        report?.backends.first { $0.name == .attributes }?.reason ?? (unavailableReason ?? "no KVM")
    }
    /// KVM makes guest_memfd files the host can map: the alias backend's private store is guest_memfd.
    public var mmapGuestMemfd: Bool {
        guard let caps = capabilities else { return false }
        return caps.guestMemfd && caps.guestMemfdFlags & GuestMemfdFlag.mmap != 0
    }
    /// Guests convert through VMCALL (KVM_EXIT_HYPERCALL for MAP_GPA_RANGE) rather than the PV port.
    public var conversionTransport: ConversionTransport { report?.conversionTransport ?? .port }

    static func read() -> HostCapabilities {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else {
            let missing = access("/dev/kvm", F_OK) != 0
            let capabilities = HostCapabilities(report: nil, unavailableReason: missing ? "no /dev/kvm" : "/dev/kvm is not read-write")
            CapabilityLedger.recordAvailability(capabilities)
            return capabilities
        }
        let logger = Logger(label: "test.host-capabilities") { _ in SwiftLogNoOpLogHandler() }
        let capabilities: HostCapabilities
        do throws(KVMError) {
            let system = try KVM.System()
            capabilities = HostCapabilities(report: HostReport.probe(system: system, logger: logger), unavailableReason: nil)
        } catch {
            capabilities = HostCapabilities(report: nil, unavailableReason: "\(error)")
        }
        CapabilityLedger.recordAvailability(capabilities)
        return capabilities
    }
}
