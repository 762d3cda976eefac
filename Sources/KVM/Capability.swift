import CKVM

/// KVM capabilities MemGate asks about (`KVM_CHECK_EXTENSION`); numbers from `ckvm.h`.
public enum Capability: CaseIterable, Sendable, Codable, RawRepresentable, CustomStringConvertible {
    case nrVCPUs  // recommended vCPUs
    case nrMemslots
    case maxVCPUs
    case syncRegs  // bitmask of register sets
    case immediateExit
    case exitHypercall  // bitmask of 1 << hypercall
    case userMemory2
    case memoryFaultInfo
    case memoryAttributes  // ask the VM fd
    case guestMemfd
    case vmTypes  // bitmask of 1 << type
    case preFaultMemory
    case guestMemfdFlags

    public var rawValue: Int32 {
        switch self {
        case .nrVCPUs: CKVM_CAP_NR_VCPUS
        case .nrMemslots: CKVM_CAP_NR_MEMSLOTS
        case .maxVCPUs: CKVM_CAP_MAX_VCPUS
        case .syncRegs: CKVM_CAP_SYNC_REGS
        case .immediateExit: CKVM_CAP_IMMEDIATE_EXIT
        case .exitHypercall: CKVM_CAP_EXIT_HYPERCALL
        case .userMemory2: CKVM_CAP_USER_MEMORY2
        case .memoryFaultInfo: CKVM_CAP_MEMORY_FAULT_INFO
        case .memoryAttributes: CKVM_CAP_MEMORY_ATTRIBUTES
        case .guestMemfd: CKVM_CAP_GUEST_MEMFD
        case .vmTypes: CKVM_CAP_VM_TYPES
        case .preFaultMemory: CKVM_CAP_PRE_FAULT_MEMORY
        case .guestMemfdFlags: CKVM_CAP_GUEST_MEMFD_FLAGS
        }
    }

    public init?(rawValue: Int32) {
        guard let found = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = found
    }

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

/// x86 VM types (`KVM_CREATE_VM` argument); numbers from `ckvm.h`.
public enum VMType: CaseIterable, Sendable, Codable, RawRepresentable, CustomStringConvertible {
    case `default`
    case swProtected
    case sev
    case sevES
    case snp
    case tdx

    public var rawValue: UInt32 {
        switch self {
        case .default: UInt32(CKVM_X86_DEFAULT_VM)
        case .swProtected: UInt32(CKVM_X86_SW_PROTECTED_VM)
        case .sev: UInt32(CKVM_X86_SEV_VM)
        case .sevES: UInt32(CKVM_X86_SEV_ES_VM)
        case .snp: UInt32(CKVM_X86_SNP_VM)
        case .tdx: UInt32(CKVM_X86_TDX_VM)
        }
    }

    public init?(rawValue: UInt32) {
        guard let found = Self.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = found
    }

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
    public static let `private` = UInt64(CKVM_MEMORY_ATTRIBUTE_PRIVATE)
}

/// guest_memfd creation flags.
public enum GuestMemfdFlag {
    public static let mmap = UInt64(CKVM_GUEST_MEMFD_FLAG_MMAP)
    public static let initShared = UInt64(CKVM_GUEST_MEMFD_FLAG_INIT_SHARED)
}

/// Hypercall numbers (the guest's RAX). Results are `GuestErrorCode`s (MemoryModel), pinned to `ckvm.h` by a test.
public enum Hypercall {
    public static let mapGPARange = UInt64(CKVM_HC_MAP_GPA_RANGE)
}
