import MemoryModel
import Synchronization

/// The host's current conversion policy, replaced atomically. Every decision
/// reads one consistent (policy, version) pair.
public final class PolicyStore: Sendable {
    private let current: Mutex<VersionedPolicy>

    public init(_ initial: VersionedPolicy = .builtIn) {
        current = Mutex(initial)
    }

    public var policy: VersionedPolicy { current.withLock { $0 } }

    public func replace(with policy: VersionedPolicy) {
        current.withLock { $0 = policy }
    }
}
