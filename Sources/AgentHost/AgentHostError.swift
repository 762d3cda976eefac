import EventStore

/// Why an AgentHost operation failed. Each case maps to one API status.
public enum AgentHostError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A field of the request is out of range or malformed.
    case invalid(field: String, message: String)
    /// The image is not a loadable guest.
    case badImage(String)
    /// KVM or the memory backend refused to build the VM.
    case creationFailed(String)
    case notFound(Int64)
    /// The VM is not in a state that allows the operation.
    case conflict(String)
    /// The event store failed; nothing was created.
    case store(EventStoreError)
    /// The agent is draining; nothing new starts.
    case shuttingDown
    case tooManyVMs(Int)
    /// Another VM not deleted has this name (its id; nil: it is being created).
    case nameTaken(String, id: Int64?)

    public var description: String {
        switch self {
        case .invalid(let field, let message): "\(field): \(message)"
        case .badImage(let message): "image: \(message)"
        case .creationFailed(let message): "cannot create the VM: \(message)"
        case .notFound(let id): "no VM with id \(id) on this agent"
        case .conflict(let message): message
        case .store(let error): "\(error)"
        case .shuttingDown: "the agent is shutting down"
        case .tooManyVMs(let limit): "this agent already holds \(limit) VMs; delete ended ones first"
        case .nameTaken(let name, let id):
            "VM name \(name) is taken by \(id.map { "VM \($0)" } ?? "a VM being created"); names are unique among VMs not deleted (DELETE an ended one to reuse its name)"
        }
    }
}
