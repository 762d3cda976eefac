import Glibc

/// KVM capabilities MemGate acts as if the host lacked (`MEMGATE_KVM_HIDE`), so one host
/// can run every fallback: hiding guest_memfd on a host that has it proves the memfd store.
/// Hiding only removes: a hidden capability reads 0 and the calls that need it fail with
/// EOPNOTSUPP, as on a kernel without it; nothing hidden can be added back.
public struct HiddenCapabilities: Sendable, Equatable, CustomStringConvertible {
    /// One capability (or VM type) that can be hidden, spelled as operators write it.
    public enum Name: String, Sendable, CaseIterable, Comparable {
        /// KVM_CAP_GUEST_MEMFD and KVM_CREATE_GUEST_MEMFD (implies guest_memfd_mmap).
        case guestMemfd = "guest_memfd"
        /// GUEST_MEMFD_FLAG_MMAP: guest_memfd the host can map.
        case guestMemfdMmap = "guest_memfd_mmap"
        /// KVM_CAP_MEMORY_ATTRIBUTES and KVM_SET_MEMORY_ATTRIBUTES.
        case memoryAttributes = "memory_attributes"
        /// VM type KVM_X86_SW_PROTECTED_VM.
        case swProtected = "sw_protected"
        /// KVM_CAP_MEMORY_FAULT_INFO: KVM_EXIT_MEMORY_FAULT with its GPA.
        case memoryFaultInfo = "memory_fault_info"
        /// KVM_CAP_USER_MEMORY2 and KVM_SET_USER_MEMORY_REGION2.
        case userMemory2 = "user_memory2"
        /// KVM_CAP_PRE_FAULT_MEMORY.
        case preFaultMemory = "pre_fault_memory"
        /// KVM_CAP_EXIT_HYPERCALL: KVM_HC_MAP_GPA_RANGE exits (guests then convert through the port).
        case exitHypercall = "exit_hypercall"
        /// KVM_CAP_SYNC_REGS: registers read and written with one ioctl each.
        case syncRegs = "sync_regs"

        public static func < (lhs: Name, rhs: Name) -> Bool {
            (allCases.firstIndex(of: lhs) ?? 0) < (allCases.firstIndex(of: rhs) ?? 0)
        }
    }

    /// The environment variable `System` reads when not told what to hide.
    public static let environmentVariable = "MEMGATE_KVM_HIDE"
    public static let none = HiddenCapabilities(names: [])

    public let names: Set<Name>

    public init(names: Set<Name>) { self.names = names }

    /// Parses a comma-separated list of names; spaces and empty items are ignored.
    public init(parsing text: String) throws(HiddenCapabilitiesError) {
        var names: Set<Name> = []
        for item in text.split(separator: ",") {
            let word = String(item.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
            guard !word.isEmpty else { continue }
            guard let name = Name(rawValue: word) else { throw HiddenCapabilitiesError(unknown: word) }
            names.insert(name)
        }
        self.names = names
    }

    /// What `MEMGATE_KVM_HIDE` asks for (nothing when it is unset or empty).
    public static func fromEnvironment() throws(HiddenCapabilitiesError) -> HiddenCapabilities {
        guard let raw = getenv(environmentVariable) else { return .none }
        return try HiddenCapabilities(parsing: String(cString: raw))
    }

    public var isEmpty: Bool { names.isEmpty }

    public func hides(_ name: Name) -> Bool {
        names.contains(name) || (name == .guestMemfdMmap && names.contains(.guestMemfd))
    }

    /// What `KVM_CHECK_EXTENSION` answers once the hidden capabilities are taken away. Pure.
    public func answer(_ capability: Capability, host value: Int32) -> Int32 {
        switch capability {
        case .guestMemfd: hides(.guestMemfd) ? 0 : value
        case .guestMemfdFlags:
            hides(.guestMemfd)
                ? 0 : hides(.guestMemfdMmap) ? value & ~Int32(truncatingIfNeeded: GuestMemfdFlag.mmap) : value
        case .memoryAttributes: hides(.memoryAttributes) ? 0 : value
        case .vmTypes: hides(.swProtected) ? value & ~(1 << Int32(VMType.swProtected.rawValue)) : value
        case .memoryFaultInfo: hides(.memoryFaultInfo) ? 0 : value
        case .userMemory2: hides(.userMemory2) ? 0 : value
        case .preFaultMemory: hides(.preFaultMemory) ? 0 : value
        case .exitHypercall: hides(.exitHypercall) ? 0 : value
        case .syncRegs: hides(.syncRegs) ? 0 : value
        case .nrVCPUs, .nrMemslots, .maxVCPUs, .immediateExit: value
        }
    }

    /// The error a call needing a hidden capability fails with, as on a host without it.
    func refusal(_ operation: String, _ name: Name) -> KVMError {
        KVMError(operation, errno: EOPNOTSUPP, hint: "\(name.rawValue) is hidden by \(Self.environmentVariable)")
    }

    /// The names, in declaration order, comma-separated ("" when nothing is hidden).
    public var description: String { names.sorted().map(\.rawValue).joined(separator: ",") }
}

/// `MEMGATE_KVM_HIDE` named something MemGate does not know.
public struct HiddenCapabilitiesError: Error, Equatable, Sendable, CustomStringConvertible {
    public let unknown: String

    public var description: String {
        "\(HiddenCapabilities.environmentVariable) names unknown capability '\(unknown)'; known: "
            + HiddenCapabilities.Name.allCases.map(\.rawValue).joined(separator: ", ")
    }
}
