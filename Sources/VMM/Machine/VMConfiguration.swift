import CGuestABI
import KVM
import MemoryModel

/// What to build a VM with.
public struct VMConfiguration: Sendable {
    /// The id the event store knows this VM by (never reused); 0 when not recorded.
    public var id: Int64 = 0
    public var name: String
    public var memoryBytes: UInt64 = 256 << 20
    public var vcpuCount: Int = 1
    /// The alias of a GPA is GPA | 1 << sharedBit.
    public var sharedBit: Int = Int(MG_DEFAULT_SHARED_BIT)
    /// Handed to the guest in its boot info (`--arg`).
    public var commandLine: String = ""
    /// Bytes of console output kept per VM.
    public var consoleCapacity: Int = 64 << 10
    public var transport: ConversionTransport = .port
    public var dataInitiallyShared = false
    /// Enables KVM_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE when the host supports it.
    public var enableHypercallExit = false
    /// The initial state of data RAM (a confidential guest expects private).
    public var initialState: PageState = .private
    /// nil chooses automatically: attributes where the host has private memory, else alias.
    public var backend: BackendKind?
    /// Runs of page state the VM's data RAM may be split into; a conversion
    /// beyond it fails with E2BIG. Each run takes a memslot (memslot mechanism)
    /// or splits the host mappings (protect). nil: what KVM allows, or
    /// `ProtectAliasBackend.defaultRunLimit`.
    public var maxRuns: Int?
    /// Rows per second this VM may add for each of invalid requests, denied requests and
    /// memory faults; beyond it they are counted per second (`event_aggregates`). nil: no bound.
    public var recordingBudget: UInt64? = 1000
    /// The alias backend's mechanism; nil: what the host probe chose (`AliasProbe`).
    public var aliasMechanism: AliasMechanism?

    public init(name: String) {
        self.name = name
    }
}

/// Why a VM could not be created.
public enum VMCreationError: Error, Sendable, CustomStringConvertible {
    case layout(BootError)
    case kvm(KVMError)
    case backend(BackendError)
    case backendUnavailable(BackendKind, reason: String)

    public var description: String {
        switch self {
        case .layout(let error): "invalid VM layout: \(error)"
        case .kvm(let error): "KVM set-up failed: \(error)"
        case .backend(let error): "memory set-up failed: \(error)"
        case .backendUnavailable(let kind, let reason):
            "the \(kind.rawValue) backend is not usable on this host: \(reason)"
        }
    }
}
