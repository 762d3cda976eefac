import KVM
import Logging

/// Whether one memory backend (the README's *Memory conversions*) can run on this host, and why.
public struct BackendAvailability: Sendable, Codable, Equatable {
    public enum Name: String, Sendable, Codable { case attributes, alias }
    public var name: Name
    public var usable: Bool
    public var reason: String
}

/// Everything `memgate-agent caps` reports about the host.
public struct HostReport: Sendable, Codable, Equatable {
    public var kernel: String
    public var capabilities: CapabilityReport
    public var backends: [BackendAvailability]
    public var hypercallProbe: HypercallProbeResult
    /// The conversion transport guests are told to use.
    public var conversionTransport: ConversionTransport
    /// What a guest access to a closed page did (decides the alias mechanism).
    public var aliasProbe: AliasProbeResult
    /// The alias mechanism VMs get: the operator's choice, else the probe's.
    public var aliasMechanism: AliasMechanism

    public init(
        kernel: String, capabilities: CapabilityReport, hypercallProbe: HypercallProbeResult,
        aliasProbe: AliasProbeResult, aliasMechanism: AliasMechanism? = nil
    ) {
        self.kernel = kernel
        self.capabilities = capabilities
        self.backends = Self.backends(for: capabilities)
        self.hypercallProbe = hypercallProbe
        self.conversionTransport = hypercallProbe.outcome.vmcallUsable ? .vmcall : .port
        self.aliasProbe = aliasProbe
        self.aliasMechanism = aliasMechanism ?? aliasProbe.mechanism
    }

    /// Probes the host: capabilities, the VMCALL exit probe, the closed-page probe.
    /// `aliasMechanism` is the operator's override, if any.
    public static func probe(system: KVM.System, aliasMechanism: AliasMechanism? = nil, logger: Logger) -> HostReport {
        HostReport(
            kernel: KVM.System.kernelRelease(), capabilities: system.capabilityReport(),
            hypercallProbe: HypercallProbe.run(system: system, logger: logger),
            aliasProbe: AliasProbe.cached(system: system, logger: logger), aliasMechanism: aliasMechanism)
    }

    /// The capability whose loss changes the most about how VMs run here, for testing the
    /// fallback below it: the attributes backend, else guest_memfd, else VMCALL conversions
    /// (when the probe found them usable), else register sync. Nil when none is in use. Pure.
    public var strongestCapability: HiddenCapabilities.Name? {
        if backends.first(where: { $0.name == .attributes })?.usable == true { return .memoryAttributes }
        if capabilities.guestMemfd { return .guestMemfd }
        if conversionTransport == .vmcall { return .exitHypercall }
        if capabilities.syncRegsMask != 0 { return .syncRegs }
        return nil
    }

    /// Which backends these capabilities allow. Pure.
    public static func backends(for caps: CapabilityReport) -> [BackendAvailability] {
        let attributes: BackendAvailability
        if let type = caps.privateMemoryVMType, caps.guestMemfd, caps.userMemory2, caps.memoryFaultInfo {
            attributes = .init(
                name: .attributes, usable: true,
                reason: "VM type \(type) has private memory attributes, guest_memfd, USER_MEMORY2 and MEMORY_FAULT_INFO"
            )
        } else {
            var missing: [String] = []
            let asked = caps.memoryAttributesByVMType.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            if caps.privateMemoryVMType == nil {
                missing.append(
                    "no VM type with the PRIVATE memory attribute (VM_TYPES: \(caps.vmTypes.map(\.description).joined(separator: ", ")); MEMORY_ATTRIBUTES: \(asked.joined(separator: ", ")))"
                )
            }
            if !caps.guestMemfd { missing.append("no GUEST_MEMFD") }
            if !caps.userMemory2 { missing.append("no USER_MEMORY2") }
            if !caps.memoryFaultInfo { missing.append("no MEMORY_FAULT_INFO") }
            attributes = .init(name: .attributes, usable: false, reason: missing.joined(separator: "; "))
        }
        let mmapable = caps.guestMemfd && caps.guestMemfdFlags & GuestMemfdFlag.mmap != 0
        let alias = BackendAvailability(
            name: .alias, usable: true,
            reason: mmapable
                ? "private pages in mmap-able guest_memfd, shared pages in memfd, one alias per page"
                : "private pages in memfd (no mmap-able guest_memfd), shared pages in memfd")
        guard !caps.hidden.isEmpty else { return [attributes, alias] }
        let masked = " (\(HiddenCapabilities.environmentVariable)=\(caps.hidden.joined(separator: ",")))"
        return [attributes, alias].map {
            var backend = $0
            backend.reason += masked
            return backend
        }
    }
}
