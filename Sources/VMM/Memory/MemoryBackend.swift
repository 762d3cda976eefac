import KVM
import MemoryModel

/// The two ways MemGate backs private and shared guest memory (the README's *Memory conversions*).
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

/// Which conversions a backend can carry out at the same time.
public enum ConversionScope: Sendable, Equatable {
    /// Conversions of disjoint page ranges are independent (per-page protections or attributes).
    case pageRange
    /// Every conversion may rewrite mappings of other pages (coalesced memslots): one at a time.
    case wholeMemory
}

/// Backs a VM's data RAM and carries out conversions. The engine guarantees
/// that no two `remap` calls overlap in their `scope`.
public protocol MemoryBackend: AnyObject, Sendable {
    var kind: BackendKind { get }
    var scope: ConversionScope { get }
    /// The host memory behind the guest, for host-side reads, writes and discards.
    var storeAccess: StoreAccess { get }

    /// Makes `range` reachable only as `state` says. `changed` are the parts of
    /// `range` that were in the other state in `before` (never empty).
    /// On `.mappingLimit` nothing changed.
    func remap(_ range: PageRange, to state: PageState, changed: [PageRange], before: PageStateMap) throws(BackendError)

    /// Classifies an MMIO (or memory-fault) address: a data-RAM access through either alias, or nil.
    func aliasAccess(at address: UInt64) -> AliasAccess?

    /// True when the run of `map` containing `page` is mapped where its state says.
    func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool

    /// Whether a memory fault asks for a conversion. False where KVM derives an access's
    /// privacy from the page's attribute (`KVM_X86_SW_PROTECTED_VM`): there the guest cannot
    /// ask implicitly, and a fault means the attribute changed under the access (a race with
    /// another vCPU's conversion: retry) or the page has no usable backing.
    var faultsRequestConversion: Bool { get }
}

extension MemoryBackend {
    /// Converts `range` to `state` (pages already in `state` are left alone) and,
    /// when asked, frees the copies the conversion left behind.
    public func apply(
        _ range: PageRange, to state: PageState, discard: Bool,
        before: PageStateMap
    ) throws(BackendError) -> AppliedConversion {
        let changed = before.parts(of: range, notIn: state)
        guard !changed.isEmpty else { return AppliedConversion(discardedBytes: 0) }
        try remap(range, to: state, changed: changed, before: before)
        guard discard else { return AppliedConversion(discardedBytes: 0) }
        do {
            return AppliedConversion(discardedBytes: try storeAccess.discardOldCopies(changed, convertedTo: state))
        } catch {
            throw .kvm(error)
        }
    }

    /// The host's view of guest memory at `gpa` as a page in `state` sees it.
    public func read(gpa: UInt64, count: Int, as state: PageState) -> [UInt8]? {
        storeAccess.read(gpa: gpa, count: count, as: state)
    }

    public func write(_ bytes: [UInt8], gpa: UInt64, as state: PageState) -> Bool {
        storeAccess.write(bytes, gpa: gpa, as: state)
    }

    /// Host-side discard of a data-RAM range's private or shared copy (sync harness, tests).
    public func discard(_ range: PageRange, copy: PageState) throws(BackendError) {
        do { try storeAccess.discard(range, copy: copy) } catch { throw .kvm(error) }
    }
}

/// The alias backend's two ways of moving a page between its addresses.
public protocol AliasMemoryBackend: MemoryBackend {
    var mechanism: AliasMechanism { get }

    /// Takes away every mapping of the run containing `page` while the VM runs,
    /// as the kernel selftest deletes a memslot, so the next access finds no backing.
    func removeBacking(of page: PageRange, in map: PageStateMap) throws(BackendError)
}

extension AliasMemoryBackend {
    /// The alias the guest used is its request: private address, private page.
    public var faultsRequestConversion: Bool { true }
}

/// Where a data-RAM address points: the page and which alias the guest used.
struct AliasAddressing: Sendable {
    let dataRAM: PageRange
    let sharedMask: UInt64

    func access(at address: UInt64) -> AliasAccess? {
        let viaShared = address & sharedMask != 0
        let gpa = address & ~sharedMask
        guard dataRAM.contains(gpa) else { return nil }
        return AliasAccess(page: PageRange.page(containing: gpa), gpa: gpa, viaPrivateAddress: !viaShared)
    }
}
