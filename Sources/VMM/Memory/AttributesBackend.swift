import KVM
import MemoryModel

/// The attributes backend (the README's *Memory conversions*), for VM types with private memory: one
/// guest_memfd-backed memslot over data RAM, page state set with
/// KVM_SET_MEMORY_ATTRIBUTES, and memory faults reported by KVM itself.
public final class AttributesBackend: MemoryBackend {
    public let kind = BackendKind.attributes
    /// Attributes are per page; KVM orders concurrent updates itself.
    public let scope = ConversionScope.pageRange
    public let storeAccess: StoreAccess
    public let faultsRequestConversion: Bool
    /// The data-RAM memslot.
    private let dataSlot: Memslot

    /// Creates the data-RAM slot and applies the initial private pages.
    /// - Parameter privacyFromAttributes: the VM type takes an access's privacy from the page's
    ///   attribute (`sw_protected`), not from the guest (SNP's C-bit, TDX's shared bit).
    public init(
        stores: GuestStores, ops: MemoryOps, slot: UInt32, initial map: PageStateMap,
        privacyFromAttributes: Bool
    ) throws(BackendError) {
        storeAccess = StoreAccess(stores: stores, ops: ops)
        faultsRequestConversion = !privacyFromAttributes
        dataSlot = Memslot(
            slot: slot, gpa: stores.dataRAM.start, size: stores.dataRAM.size, store: .attributed, offset: 0)
        do {
            try ops.create(dataSlot)
            // KVM starts every page shared (attributes 0); make the private runs private.
            for run in map.runs where run.state == .private { try ops.setAttributes(run.range, private: true) }
        } catch {
            throw .kvm(error)
        }
    }

    public func remap(_ range: PageRange, to state: PageState, changed: [PageRange], before: PageStateMap)
        throws(BackendError)
    {
        do {
            try storeAccess.ops.setAttributes(range, private: state == .private)
        } catch {
            throw .kvm(error)
        }
    }

    /// Maps data RAM again without its guest_memfd, as the kernel's
    /// `private_mem_kvm_exits_test` does: a page whose attribute is private then has no
    /// usable backing, and KVM answers an access to it with KVM_EXIT_MEMORY_FAULT.
    public func removePrivateStore() throws(BackendError) {
        do {
            try storeAccess.ops.delete(dataSlot)
            var plain = dataSlot
            plain.store = .sharedStore
            try storeAccess.ops.create(plain)
        } catch {
            throw .kvm(error)
        }
    }

    /// KVM reports faults as KVM_EXIT_MEMORY_FAULT; MMIO is never guest memory here.
    public func aliasAccess(at address: UInt64) -> AliasAccess? { nil }

    /// KVM maps whatever the attributes say; a fault on a page already in the wanted
    /// state is a race with another vCPU's conversion, and the access is retried.
    public func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool { true }
}
