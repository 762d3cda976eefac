import KVM

/// Why a conversion could not be carried out by the backend.
public enum BackendError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The conversion would split data RAM into more runs than the VM may map
    /// (memslots, or host mappings under `protect`); nothing changed.
    case mappingLimit(needed: Int, limit: Int, of: String)
    /// A KVM call or syscall failed part-way; the VM's memory may be inconsistent.
    case kvm(KVMError)

    public var description: String {
        switch self {
        case .mappingLimit(let needed, let limit, let what):
            "conversion needs \(needed) \(what) but the VM may use \(limit); memory is too fragmented"
        case .kvm(let error): "\(error)"
        }
    }
}
