import KVM
import MemoryModel
import Synchronization

/// The alias backend's `protect` mechanism: data RAM is mapped for good at its
/// private GPA (the private store's guest view) and at its shared alias (the
/// shared store's guest view). A page is open in the view matching its state
/// and `PROT_NONE` in the other, so a wrong-alias access exits exactly as an
/// unmapped GPA does. A conversion opens the new view before closing the old
/// one: no other page ever becomes unreachable, and the converted page is never
/// unreachable through the alias matching its state.
public final class ProtectAliasBackend: AliasMemoryBackend {
    public let kind = BackendKind.alias
    public let mechanism = AliasMechanism.protect
    /// Protections are per page: conversions of disjoint ranges run side by side.
    public let scope = ConversionScope.pageRange
    public let storeAccess: StoreAccess
    /// Runs of page state the VM may have: each splits both host mappings, and
    /// the process's mapping count (vm.max_map_count) is shared by every VM.
    public let runLimit: Int
    private let addressing: AliasAddressing
    /// Pages whose backing a test took away (`removeBacking`).
    private let unbacked = Mutex<Set<UInt64>>([])

    public static let defaultRunLimit = 4096
    /// Mappings left for everything else in the process (thread stacks, malloc arenas, SQLite, the stores).
    static let reservedMappings = 8192

    /// The run limit that lets `vms` VMs split their views as far as allowed without
    /// exhausting the process's `vm.max_map_count` (each run costs about one mapping per
    /// view): one VM's fragmentation can then never make another VM's conversion fail.
    public static func runLimit(maxMapCount: Int, vms: Int) -> Int {
        let available = max(maxMapCount - reservedMappings, 0) / (2 * max(vms, 1))
        return min(max(available, 64), defaultRunLimit)
    }

    /// Binds both views as memslots and closes, in each, the pages whose state is the other.
    init(
        stores: GuestStores, ops: MemoryOps, sharedMask: UInt64, initial map: PageStateMap,
        firstSlot: UInt32, runLimit: Int
    ) throws(BackendError) {
        storeAccess = StoreAccess(stores: stores, ops: ops)
        addressing = AliasAddressing(dataRAM: stores.dataRAM, sharedMask: sharedMask)
        self.runLimit = runLimit
        let dataRAM = stores.dataRAM
        guard map.runs.count <= runLimit else {
            throw .mappingLimit(needed: map.runs.count, limit: runLimit, of: "page-state runs")
        }
        do {
            for run in map.runs { try ops.setAccess(run.range, view: run.state.opposite, open: false) }
            try ops.create(
                Memslot(slot: firstSlot, gpa: dataRAM.start, size: dataRAM.size, store: .privateView, offset: 0))
            try ops.create(
                Memslot(
                    slot: firstSlot + 1, gpa: dataRAM.start | sharedMask, size: dataRAM.size, store: .sharedView,
                    offset: 0))
        } catch {
            throw .kvm(error)
        }
    }

    public func remap(_ range: PageRange, to state: PageState, changed: [PageRange], before: PageStateMap)
        throws(BackendError)
    {
        let needed = before.runCount(afterSetting: range, to: state)
        guard needed <= runLimit else { throw .mappingLimit(needed: needed, limit: runLimit, of: "page-state runs") }
        let ops = storeAccess.ops
        do {
            try ops.setAccess(range, view: state, open: true)
        } catch {
            // Nothing changed yet: mprotect fails whole.
            throw Self.refusal(error, needed: needed)
        }
        do {
            try ops.setAccess(range, view: state.opposite, open: false)
        } catch {
            // Undo the open so the page stays reachable at exactly one address.
            do {
                try ops.setAccess(range, view: state, open: false)
            } catch {
                throw .kvm(error)
            }
            throw Self.refusal(error, needed: needed)
        }
    }

    /// ENOMEM from mprotect means the process is out of mappings (vm.max_map_count): the
    /// conversion is refused like any other mapping limit, and nothing changed.
    static func refusal(_ error: KVMError, needed: Int) -> BackendError {
        error.isOutOfMemory
            ? .mappingLimit(
                needed: needed, limit: needed - 1,
                of: "page-state runs (the process is out of host mappings, vm.max_map_count)")
            : .kvm(error)
    }

    public func aliasAccess(at address: UInt64) -> AliasAccess? { addressing.access(at: address) }

    /// Protections follow the page map under the engine's range lock, so a page in
    /// the wanted state is open unless a test removed its backing.
    public func isMapped(_ page: PageRange, in map: PageStateMap) -> Bool {
        !unbacked.withLock { $0.contains(page.start) }
    }

    public func removeBacking(of page: PageRange, in map: PageStateMap) throws(BackendError) {
        unbacked.withLock { _ = $0.insert(page.start) }
        do {
            try storeAccess.ops.setAccess(page, view: .private, open: false)
            try storeAccess.ops.setAccess(page, view: .shared, open: false)
        } catch {
            throw .kvm(error)
        }
    }
}
