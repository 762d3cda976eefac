import KVM
import MemoryModel
import Synchronization

/// DESIGN §2 alias backend: every data-RAM page is mapped only at the alias
/// matching its state — its GPA when private, GPA | shared mask when shared —
/// with one memslot per maximal run. A guest access through the other alias
/// finds no memslot and arrives as MMIO, which the engine turns into a fault.
public final class AliasBackend: MemoryBackend {
    public let kind = BackendKind.alias
    private let access: StoreAccess
    private var stores: GuestStores { access.stores }
    private var ops: MemoryOps { access.ops }
    private let sharedMask: UInt64
    private let table: Mutex<AliasSlotTable>

    /// Maps the initial runs of `map`.
    public init(stores: GuestStores, ops: MemoryOps, sharedMask: UInt64, initial map: PageStateMap,
                firstSlot: UInt32, slotLimit: Int) throws(BackendError) {
        access = StoreAccess(stores: stores, ops: ops)
        self.sharedMask = sharedMask
        var table = AliasSlotTable(dataRAM: stores.dataRAM, sharedMask: sharedMask, firstSlot: firstSlot, limit: slotLimit)
        let plan = try table.plan(before: [], after: map.runs)
        do {
            for slot in plan.creates { try ops.create(slot) }
        } catch {
            throw .wrapping(error)
        }
        self.table = Mutex(table)
    }

    public var slotCount: Int { table.withLock { $0.count } }

    public func apply(_ range: PageRange, to state: PageState, discard: Bool,
                      before: PageStateMap, after: PageStateMap) throws(BackendError) -> AppliedConversion {
        let window = PageRange(start: range.start == stores.dataRAM.start ? range.start : range.start - PageRange.pageSize,
                               end: range.end == stores.dataRAM.end ? range.end : range.end + PageRange.pageSize)
        let changed = before.parts(of: range, notIn: state)
        guard !changed.isEmpty else { return AppliedConversion(discardedBytes: 0) }
        let plan = try table.withLock { table throws(BackendError) in
            try table.plan(before: before.runs(overlapping: window), after: after.runs(overlapping: window))
        }
        var discarded: UInt64 = 0
        do {
            // Deletes first: KVM refuses overlapping slots.
            for slot in plan.deletes { try ops.delete(slot) }
            for slot in plan.creates { try ops.create(slot) }
            if discard { discarded = try access.discardOldCopies(changed, convertedTo: state) }
        } catch {
            throw .wrapping(error)
        }
        return AppliedConversion(discardedBytes: discarded)
    }

    public func aliasAccess(at address: UInt64) -> AliasAccess? {
        let viaShared = address & sharedMask != 0
        let gpa = address & ~sharedMask
        guard stores.dataRAM.contains(gpa) else { return nil }
        return AliasAccess(page: PageRange.page(containing: gpa), gpa: gpa, viaPrivateAddress: !viaShared)
    }

    public func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool {
        guard let run = map.runs(overlapping: page).first else { return false }
        return table.withLock { $0.isMapped(run) }
    }

    public func read(gpa: UInt64, count: Int, as state: PageState) -> [UInt8]? {
        access.read(gpa: gpa, count: count, as: state)
    }

    public func write(_ bytes: [UInt8], gpa: UInt64, as state: PageState) -> Bool {
        access.write(bytes, gpa: gpa, as: state)
    }

    public func discard(_ range: PageRange, copy: PageState) throws(BackendError) {
        do { try access.discard(range, copy: copy) } catch { throw .wrapping(error) }
    }

    /// Deletes the memslot of the run containing `page` while the VM runs, as
    /// the kernel selftest does, so the next access faults with no backing.
    public func removeBacking(of page: PageRange, in map: PageStateMap) throws(BackendError) {
        guard let run = map.runs(overlapping: page).first,
              let slot = table.withLock({ $0.remove(run) }) else { return }
        do {
            try ops.delete(slot)
        } catch {
            throw .wrapping(error)
        }
    }
}
