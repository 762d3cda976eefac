/// What this host's KVM can do, as far as MemGate cares.
public struct CapabilityReport: Sendable, Codable, Equatable {
    public var apiVersion: Int32
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

    public init(apiVersion: Int32, system: [String: Int32], vmTypes: [VMType], memoryAttributesByVMType: [String: UInt64],
                guestMemfd: Bool, guestMemfdFlags: UInt64, exitHypercallMask: UInt64, memoryFaultInfo: Bool,
                syncRegsMask: UInt32, userMemory2: Bool, vcpusRecommended: Int, vcpusMax: Int, maxMemslots: Int) {
        self.apiVersion = apiVersion; self.system = system; self.vmTypes = vmTypes
        self.memoryAttributesByVMType = memoryAttributesByVMType; self.guestMemfd = guestMemfd
        self.guestMemfdFlags = guestMemfdFlags; self.exitHypercallMask = exitHypercallMask
        self.memoryFaultInfo = memoryFaultInfo; self.syncRegsMask = syncRegsMask; self.userMemory2 = userMemory2
        self.vcpusRecommended = vcpusRecommended; self.vcpusMax = vcpusMax; self.maxMemslots = maxMemslots
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
