import KVM
import MemoryModel

/// The two ways MemGate backs private and shared guest memory (DESIGN §2).
public enum BackendKind: String, Sendable, Codable, CaseIterable {
    /// guest_memfd + KVM_SET_MEMORY_ATTRIBUTES; KVM reports memory faults itself.
    case attributes
    /// A private address and a shared alias per page; wrong-alias accesses arrive as MMIO.
    case alias
}

/// What the backend did for one conversion.
public struct AppliedConversion: Sendable, Equatable {
    public var discardedBytes: UInt64
}

/// A guest access through the alias that does not match the page's state.
public struct AliasAccess: Sendable, Equatable {
    /// The page, without the alias bit.
    public var page: PageRange
    /// The exact address, without the alias bit.
    public var gpa: UInt64
    /// True when the guest used the private address (it wants the page private).
    public var viaPrivateAddress: Bool
}

/// Backs a VM's data RAM and carries out conversions. Callers serialize calls
/// (the conversion engine holds its lock).
public protocol MemoryBackend: AnyObject, Sendable {
    var kind: BackendKind { get }

    /// Makes `after` real for the pages of `range` that differ from `before`.
    /// On `.memslotLimit` nothing changed.
    func apply(_ range: PageRange, to state: PageState, discard: Bool,
               before: PageStateMap, after: PageStateMap) throws(BackendError) -> AppliedConversion

    /// Classifies an MMIO address: a data-RAM access through either alias, or nil.
    func aliasAccess(at address: UInt64) -> AliasAccess?

    /// True when the run of `map` containing `page` is mapped where its state says.
    func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool

    /// The host's view of guest memory at `gpa` as a page in `state` sees it.
    func read(gpa: UInt64, count: Int, as state: PageState) -> [UInt8]?
    func write(_ bytes: [UInt8], gpa: UInt64, as state: PageState) -> Bool

    /// Host-side discards of a data-RAM range's private or shared copy (sync harness, tests).
    func discard(_ range: PageRange, copy: PageState) throws(BackendError)
}
