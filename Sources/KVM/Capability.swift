import CKVM

/// KVM capabilities MemGate asks about (`KVM_CHECK_EXTENSION`), by their KVM numbers.
public enum Capability: Int32, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case nrVCPUs = 9             // KVM_CAP_NR_VCPUS: recommended vCPUs
    case nrMemslots = 10         // KVM_CAP_NR_MEMSLOTS
    case maxVCPUs = 66           // KVM_CAP_MAX_VCPUS
    case syncRegs = 74           // KVM_CAP_SYNC_REGS: bitmask of register sets
    case immediateExit = 136     // KVM_CAP_IMMEDIATE_EXIT
    case exitHypercall = 201     // KVM_CAP_EXIT_HYPERCALL: bitmask of 1 << hypercall
    case userMemory2 = 231       // KVM_CAP_USER_MEMORY2
    case memoryFaultInfo = 232   // KVM_CAP_MEMORY_FAULT_INFO
    case memoryAttributes = 233  // KVM_CAP_MEMORY_ATTRIBUTES: ask the VM fd
    case guestMemfd = 234        // KVM_CAP_GUEST_MEMFD
    case vmTypes = 235           // KVM_CAP_VM_TYPES: bitmask of 1 << type
    case preFaultMemory = 236    // KVM_CAP_PRE_FAULT_MEMORY
    case guestMemfdFlags = 244   // KVM_CAP_GUEST_MEMFD_FLAGS

    public var description: String {
        switch self {
        case .nrVCPUs: "NR_VCPUS"
        case .nrMemslots: "NR_MEMSLOTS"
        case .maxVCPUs: "MAX_VCPUS"
        case .syncRegs: "SYNC_REGS"
        case .immediateExit: "IMMEDIATE_EXIT"
        case .exitHypercall: "EXIT_HYPERCALL"
        case .userMemory2: "USER_MEMORY2"
        case .memoryFaultInfo: "MEMORY_FAULT_INFO"
        case .memoryAttributes: "MEMORY_ATTRIBUTES"
        case .guestMemfd: "GUEST_MEMFD"
        case .vmTypes: "VM_TYPES"
        case .preFaultMemory: "PRE_FAULT_MEMORY"
        case .guestMemfdFlags: "GUEST_MEMFD_FLAGS"
        }
    }
}

/// x86 VM types (`KVM_CREATE_VM` argument).
public enum VMType: UInt32, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case `default` = 0
    case swProtected = 1
    case sev = 2
    case sevES = 3
    case snp = 4
    case tdx = 5

    /// Types whose memory KVM can make private (guest_memfd + memory attributes).
    public var supportsPrivateMemory: Bool { self == .swProtected || self == .snp || self == .tdx }

    /// Decodes the `KVM_CAP_VM_TYPES` bitmask.
    public static func decode(mask: Int32) -> [VMType] {
        allCases.filter { mask & (1 << Int32($0.rawValue)) != 0 }
    }

    public var description: String {
        switch self {
        case .default: "default"
        case .swProtected: "sw_protected"
        case .sev: "sev"
        case .sevES: "sev_es"
        case .snp: "snp"
        case .tdx: "tdx"
        }
    }
}

/// Memory attribute bits (`KVM_SET_MEMORY_ATTRIBUTES`).
public enum MemoryAttribute {
    public static let `private`: UInt64 = 1 << 3
}

/// guest_memfd creation flags.
public enum GuestMemfdFlag {
    public static let mmap: UInt64 = 1 << 0
    public static let initShared: UInt64 = 1 << 1
}

/// Hypercall numbers and return codes the guest sees in RAX.
public enum Hypercall {
    public static let mapGPARange: UInt64 = 12
    /// `-KVM_EINVAL`, `-KVM_EPERM`, `-KVM_ENOSYS` as the guest reads them.
    public static let errorInvalid = UInt64(bitPattern: -22)
    public static let errorPermission = UInt64(bitPattern: -1)
    public static let errorNotSupported = UInt64(bitPattern: -1000)
}
