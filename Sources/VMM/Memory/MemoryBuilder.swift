import KVM
import Logging
import MemoryModel

/// Builds a VM's stores and backend, choosing what this host supports and
/// saying what it chose.
struct MemoryBuilder {
    struct Built {
        let stores: GuestStores
        let ops: KVMMemoryOps
        let backend: MemoryBackend
        /// e.g. "alias (protect): private pages in guest_memfd bound with KVM_MEM_GUEST_MEMFD, shared pages in memfd".
        let description: String
    }

    let vm: KVM.VM
    let layout: BootLayout
    let initial: PageStateMap
    /// Runs of page state data RAM may be split into (memslots, or host mappings under protect).
    let runLimit: Int
    let logger: Logger

    func build(_ kind: BackendKind, mechanism: AliasMechanism, gate: RunGate?, caps: CapabilityReport)
        throws(VMCreationError) -> Built
    {
        let dataRAM = PageRange(start: layout.dataRAM.lowerBound, end: layout.dataRAM.upperBound)
        do {
            let boot = try HostMemory.anonymous(size: Int(layout.bootRegionSize))
            let shared = try HostMemory.memfd(name: "memgate-shared", size: Int(max(dataRAM.size, 1)))
            switch kind {
            case .attributes:
                let file = try vm.createGuestMemfd(size: max(dataRAM.size, PageRange.pageSize))
                let stores = GuestStores(
                    bootRegion: boot, dataRAM: dataRAM, privateFile: file, privateMemory: nil, sharedMemory: shared)
                let ops = KVMMemoryOps(vm: vm, stores: stores, guestMemfdSlots: true)
                try ops.create(Memslot(slot: 0, gpa: 0, size: layout.bootRegionSize, store: .boot, offset: 0))
                let backend = try AttributesBackend(
                    stores: stores, ops: ops, slot: 1, initial: initial,
                    privacyFromAttributes: vm.type == .swProtected)
                return Built(
                    stores: stores, ops: ops, backend: backend,
                    description:
                        "attributes: guest_memfd private memory, memfd shared memory, KVM_SET_MEMORY_ATTRIBUTES")
            case .alias:
                return try buildAlias(
                    boot: boot, shared: shared, dataRAM: dataRAM, mechanism: mechanism, gate: gate, caps: caps)
            }
        } catch let error as KVMError {
            throw .kvm(error)
        } catch let error as BackendError {
            throw .backend(error)
        } catch {
            throw .kvm(KVMError("memory set-up", errno: 0, hint: "\(error)"))
        }
    }

    /// Private pages: mmap-able guest_memfd bound as such, else the same file
    /// mapped as ordinary memory, else a memfd. The first that maps the initial slots wins.
    private func buildAlias(
        boot: HostMemory, shared: HostMemory, dataRAM: PageRange, mechanism: AliasMechanism,
        gate: RunGate?, caps: CapabilityReport
    ) throws -> Built {
        var attempts: [(GuestMemfd?, HostMemory, Bool, String)] = []
        if caps.guestMemfd, caps.guestMemfdFlags & GuestMemfdFlag.mmap != 0, dataRAM.size > 0 {
            let flags = GuestMemfdFlag.mmap | (caps.guestMemfdFlags & GuestMemfdFlag.initShared)
            if let file = try? vm.createGuestMemfd(size: dataRAM.size, flags: flags), let mapping = try? file.map() {
                if caps.userMemory2 {
                    attempts.append((file, mapping, true, "guest_memfd bound with KVM_MEM_GUEST_MEMFD"))
                }
                attempts.append((file, mapping, false, "guest_memfd mapped as ordinary memory"))
            }
        }
        attempts.append(
            (nil, try HostMemory.memfd(name: "memgate-private", size: Int(max(dataRAM.size, 1))), false, "memfd"))
        var lastError: Error = KVMError("memory set-up", errno: 0, hint: "no private store could be mapped")
        var bootMapped = false
        for (file, mapping, bound, how) in attempts {
            do {
                let views =
                    mechanism == .protect
                    ? GuestStores.GuestViews(
                        privateView: try mapping.mappedAgain(), sharedView: try shared.mappedAgain()) : nil
                let stores = GuestStores(
                    bootRegion: boot, dataRAM: dataRAM, privateFile: file, privateMemory: mapping,
                    sharedMemory: shared, guestViews: views)
                let ops = KVMMemoryOps(vm: vm, stores: stores, guestMemfdSlots: bound)
                if !bootMapped {
                    try ops.create(Memslot(slot: 0, gpa: 0, size: layout.bootRegionSize, store: .boot, offset: 0))
                    bootMapped = true
                }
                let backend: MemoryBackend =
                    switch mechanism {
                    case .protect:
                        try ProtectAliasBackend(
                            stores: stores, ops: ops, sharedMask: layout.sharedMask, initial: initial,
                            firstSlot: 1, runLimit: runLimit)
                    case .memslot:
                        try MemslotAliasBackend(
                            stores: stores, ops: ops, sharedMask: layout.sharedMask, initial: initial,
                            firstSlot: 1, slotLimit: runLimit, gate: gate)
                    }
                return Built(
                    stores: stores, ops: ops, backend: backend,
                    description:
                        "alias (\(mechanism)): private pages in \(how), shared pages in memfd, alias bit \(layout.sharedBit)"
                )
            } catch {
                logger.debug("alias private store rejected", metadata: ["store": "\(how)", "error": "\(error)"])
                lastError = error
            }
        }
        throw lastError
    }
}
