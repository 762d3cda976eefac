import KVM
import MemoryModel
import Synchronization

/// The alias backend's `memslot` mechanism (the README's *Memory conversions*): every data-RAM page is
/// mapped only at the alias matching its state, with one memslot per maximal
/// run. A guest access through the other alias finds no memslot and arrives as
/// MMIO. Rewriting a slot other vCPUs may be using happens with them held
/// outside KVM_RUN, so no access ever sees the gap between delete and create.
public final class MemslotAliasBackend: AliasMemoryBackend {
    public let kind = BackendKind.alias
    public let mechanism = AliasMechanism.memslot
    /// Coalesced slots span pages other conversions touch: one conversion at a time.
    public let scope = ConversionScope.wholeMemory
    public let storeAccess: StoreAccess
    private let addressing: AliasAddressing
    private let table: Mutex<AliasSlotTable>
    /// Holds the other vCPUs outside KVM_RUN during a rewrite; nil with one vCPU.
    private let gate: RunGate?

    /// Maps the initial runs of `map`.
    init(
        stores: GuestStores, ops: MemoryOps, sharedMask: UInt64, initial map: PageStateMap,
        firstSlot: UInt32, slotLimit: Int, gate: RunGate?
    ) throws(BackendError) {
        storeAccess = StoreAccess(stores: stores, ops: ops)
        addressing = AliasAddressing(dataRAM: stores.dataRAM, sharedMask: sharedMask)
        self.gate = gate
        var table = AliasSlotTable(
            dataRAM: stores.dataRAM, sharedMask: sharedMask, firstSlot: firstSlot, limit: slotLimit)
        let plan = try table.plan(before: [], after: map.runs)
        do {
            for slot in plan.creates { try ops.create(slot) }
        } catch {
            throw .kvm(error)
        }
        self.table = Mutex(table)
    }

    public var slotCount: Int { table.withLock { $0.count } }

    public func remap(_ range: PageRange, to state: PageState, changed: [PageRange], before: PageStateMap)
        throws(BackendError)
    {
        let dataRAM = storeAccess.stores.dataRAM
        let window = PageRange(
            start: range.start == dataRAM.start ? range.start : range.start - PageRange.pageSize,
            end: range.end == dataRAM.end ? range.end : range.end + PageRange.pageSize)
        var after = before
        after.set(range, to: state)
        let plan = try table.withLock { table throws(BackendError) in
            try table.plan(before: before.runs(overlapping: window), after: after.runs(overlapping: window))
        }
        let ops = storeAccess.ops
        let rewrite = { () throws(KVMError) in
            // Deletes first: KVM refuses overlapping slots.
            for slot in plan.deletes { try ops.delete(slot) }
            for slot in plan.creates { try ops.create(slot) }
        }
        do {
            // Creating slots never takes memory away from a running vCPU; deleting does.
            if let gate, !plan.deletes.isEmpty {
                try gate.withVCPUsOutsideKVM(rewrite)
            } else {
                try rewrite()
            }
        } catch {
            throw .kvm(error)
        }
    }

    public func aliasAccess(at address: UInt64) -> AliasAccess? { addressing.access(at: address) }

    public func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool {
        guard let run = map.runs(overlapping: page).first else { return false }
        return table.withLock { $0.isMapped(run) }
    }

    public func removeBacking(of page: PageRange, in map: PageStateMap) throws(BackendError) {
        guard let run = map.runs(overlapping: page).first,
            let slot = table.withLock({ $0.remove(run) })
        else { return }
        do {
            try storeAccess.ops.delete(slot)
        } catch {
            throw .kvm(error)
        }
    }
}
