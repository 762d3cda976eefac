import EventStore
import Foundation
import MemoryModel
import Platform

/// The policy an agent starts with, and the history row its start owes the store.
/// Desired state persists: without `--policy` the store's newest application stands;
/// `--policy FILE` is an explicit replacement recorded with the file's path; only a
/// new store starts with the built-in policy (recorded once, as such).
struct PolicyInForce {
    var policy: VersionedPolicy
    /// What to write to `policy_applications` once the agent is up (nil: nothing changed).
    var change: PolicyChange?

    /// - Parameter command: `serve` or `run`, for the history row of a replacement.
    static func resolve(file: String?, store: EventStore?, command: String) throws(AgentFailure) -> PolicyInForce {
        if let file {
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            return PolicyInForce(
                policy: try load(file),
                change: PolicyChange(principal: "unix uid \(getuid())", channel: "\(command) --policy \(path)"))
        }
        guard let store else { return PolicyInForce(policy: .builtIn, change: nil) }
        let stored: StoredPolicy?
        do throws(EventStoreError) {
            stored = try EventQueries(store: store).policyInForce()
        } catch {
            throw .store(error)
        }
        guard let stored else {
            return PolicyInForce(
                policy: .builtIn, change: PolicyChange(principal: nil, channel: "built-in (first start)"))
        }
        let policy: VersionedPolicy
        do {
            policy = try VersionedPolicy(document: stored.document)
        } catch {
            throw .usage(
                """
                the stored policy \(stored.version.prefix(12)) (applied by \(stored.appliedBy)) is no longer valid: \(error); \
                start once with --policy FILE to replace it
                """)
        }
        // Stores written before versions hashed the canonical form: the same document, re-versioned once.
        let change =
            policy.version == stored.version
            ? nil
            : PolicyChange(
                principal: nil, channel: "restored (was version \(stored.version.prefix(12)) before canonical versions)"
            )
        return PolicyInForce(policy: policy, change: change)
    }

    /// Writes the history row, if the start owes one. Call it once the agent is serving,
    /// so that a start that fails leaves the history as it was.
    func record(in store: EventStore?) throws(AgentFailure) {
        guard let store, let change else { return }
        do throws(EventStoreError) {
            try store.recordPolicy(policy, change: change, atNanos: MonotonicClock.wallNanos())
        } catch {
            throw .store(error)
        }
    }

    /// A policy file; an unreadable or invalid one is a usage error naming the field.
    static func load(_ path: String) throws(AgentFailure) -> VersionedPolicy {
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .usage("cannot read policy \(path): \(error.localizedDescription)")
        }
        do {
            return try VersionedPolicy(document: bytes)
        } catch {
            throw .usage("invalid policy \(path): \(error)")
        }
    }
}
