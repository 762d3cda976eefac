/// What this host's KVM can do, as far as MemGate cares.
public struct CapabilityReport: Sendable, Codable, Equatable {
    public var apiVersion: Int32
    /// Names hidden by `MEMGATE_KVM_HIDE`: every answer below is as if KVM lacked them.
    public var hidden: [String]
    /// Raw `KVM_CHECK_EXTENSION` answers on /dev/kvm, by capability.
    public var system: [String: Int32]
    public var vmTypes: [VMType]
    /// `KVM_CAP_MEMORY_ATTRIBUTES` asked on a VM fd of each creatable type.
    public var memoryAttributesByVMType: [String: UInt64]
    public var guestMemfd: Bool
    public var guestMemfdFlags: UInt64
    public var exitHypercallMask: UInt64
    public var memoryFaultInfo: Bool
    public var syncRegsMask: UInt32
    public var userMemory2: Bool
    public var vcpusRecommended: Int
    public var vcpusMax: Int
    public var maxMemslots: Int

    public init(
        apiVersion: Int32, hidden: [String] = [], system: [String: Int32], vmTypes: [VMType],
        memoryAttributesByVMType: [String: UInt64],
        guestMemfd: Bool, guestMemfdFlags: UInt64, exitHypercallMask: UInt64, memoryFaultInfo: Bool,
        syncRegsMask: UInt32, userMemory2: Bool, vcpusRecommended: Int, vcpusMax: Int, maxMemslots: Int
    ) {
        self.apiVersion = apiVersion
        self.hidden = hidden
        self.system = system
        self.vmTypes = vmTypes
        self.memoryAttributesByVMType = memoryAttributesByVMType
        self.guestMemfd = guestMemfd
        self.guestMemfdFlags = guestMemfdFlags
        self.exitHypercallMask = exitHypercallMask
        self.memoryFaultInfo = memoryFaultInfo
        self.syncRegsMask = syncRegsMask
        self.userMemory2 = userMemory2
        self.vcpusRecommended = vcpusRecommended
        self.vcpusMax = vcpusMax
        self.maxMemslots = maxMemslots
    }

    /// Builds the report from `KVM_CHECK_EXTENSION` answers on /dev/kvm (`check`) and on a VM fd
    /// of each type (`memoryAttributes`, nil when the type cannot be created). Pure given its sources.
    public static func build(
        hidden: HiddenCapabilities, check: (Capability) -> Int32,
        memoryAttributes: (VMType) -> UInt64?
    ) -> CapabilityReport {
        var raw: [String: Int32] = [:]
        for capability in Capability.allCases { raw[capability.description] = check(capability) }
        var types = VMType.decode(mask: check(.vmTypes))
        if types.isEmpty { types = [.default] }  // kernels without VM_TYPES still create type 0
        var attributes: [String: UInt64] = [:]
        for type in types {
            if let answer = memoryAttributes(type) { attributes[type.description] = answer }
        }
        let recommended = Int(check(.nrVCPUs))
        return CapabilityReport(
            apiVersion: System.expectedAPIVersion,
            hidden: hidden.names.sorted().map(\.rawValue),
            system: raw,
            vmTypes: types,
            memoryAttributesByVMType: attributes,
            guestMemfd: check(.guestMemfd) > 0,
            guestMemfdFlags: UInt64(check(.guestMemfdFlags)),
            exitHypercallMask: UInt64(UInt32(bitPattern: check(.exitHypercall))),
            memoryFaultInfo: check(.memoryFaultInfo) > 0,
            syncRegsMask: UInt32(bitPattern: check(.syncRegs)),
            userMemory2: check(.userMemory2) > 0,
            vcpusRecommended: recommended > 0 ? recommended : 4,
            vcpusMax: Int(check(.maxVCPUs)),
            maxMemslots: Int(check(.nrMemslots)))
    }

    /// True when KVM can exit to userspace for `KVM_HC_MAP_GPA_RANGE`.
    public var mapGPARangeExitSupported: Bool { exitHypercallMask & (1 << Hypercall.mapGPARange) != 0 }

    /// The first VM type whose VM fd reports the PRIVATE memory attribute.
    public var privateMemoryVMType: VMType? {
        vmTypes.first { type in
            type.supportsPrivateMemory
                && (memoryAttributesByVMType[type.description] ?? 0) & MemoryAttribute.private != 0
        }
    }
}
