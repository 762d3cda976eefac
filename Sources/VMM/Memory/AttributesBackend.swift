import KVM
import MemoryModel

/// DESIGN §2 attributes backend, for VM types with private memory: one
/// guest_memfd-backed memslot over data RAM, page state set with
/// KVM_SET_MEMORY_ATTRIBUTES, and memory faults reported by KVM itself.
public final class AttributesBackend: MemoryBackend {
    public let kind = BackendKind.attributes
    private let access: StoreAccess
    private var ops: MemoryOps { access.ops }

    /// Creates the data-RAM slot and applies the initial private pages.
    public init(stores: GuestStores, ops: MemoryOps, slot: UInt32, initial map: PageStateMap) throws(BackendError) {
        access = StoreAccess(stores: stores, ops: ops)
        do {
            try ops.create(Memslot(slot: slot, gpa: stores.dataRAM.start, size: stores.dataRAM.size, store: .attributed, offset: 0))
            // KVM starts every page shared (attributes 0); make the private runs private.
            for run in map.runs where run.state == .private { try ops.setAttributes(run.range, private: true) }
        } catch {
            throw .wrapping(error)
        }
    }

    public func apply(_ range: PageRange, to state: PageState, discard: Bool,
                      before: PageStateMap, after: PageStateMap) throws(BackendError) -> AppliedConversion {
        let changed = before.parts(of: range, notIn: state)
        guard !changed.isEmpty else { return AppliedConversion(discardedBytes: 0) }
        var discarded: UInt64 = 0
        do {
            try ops.setAttributes(range, private: state == .private)
            if discard { discarded = try access.discardOldCopies(changed, convertedTo: state) }
        } catch {
            throw .wrapping(error)
        }
        return AppliedConversion(discardedBytes: discarded)
    }

    /// KVM reports faults as KVM_EXIT_MEMORY_FAULT; MMIO is never guest memory here.
    public func aliasAccess(at address: UInt64) -> AliasAccess? { nil }

    /// KVM maps whatever the attributes say; a fault on a page already in the wanted
    /// state is a race with another vCPU's conversion (the runner stops the VM if it repeats).
    public func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool { true }

    public func read(gpa: UInt64, count: Int, as state: PageState) -> [UInt8]? {
        access.read(gpa: gpa, count: count, as: state)
    }

    public func write(_ bytes: [UInt8], gpa: UInt64, as state: PageState) -> Bool {
        access.write(bytes, gpa: gpa, as: state)
    }

    public func discard(_ range: PageRange, copy: PageState) throws(BackendError) {
        do { try access.discard(range, copy: copy) } catch { throw .wrapping(error) }
    }
}
