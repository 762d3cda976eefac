import KVM
import MemoryModel
import Platform
import Synchronization

/// `MemoryOps` on a real KVM VM. Also measures the time spent inside these calls.
public final class KVMMemoryOps: MemoryOps {
    private let vm: KVM.VM
    private let stores: GuestStores
    /// Bind private slots through KVM_SET_USER_MEMORY_REGION2 with the guest_memfd.
    private let guestMemfdSlots: Bool
    private let nanos = Atomic<UInt64>(0)

    public init(vm: KVM.VM, stores: GuestStores, guestMemfdSlots: Bool) {
        self.vm = vm
        self.stores = stores
        self.guestMemfdSlots = guestMemfdSlots
    }

    /// Total nanoseconds spent in memslot, attribute and discard calls.
    public var elapsedNanos: UInt64 { nanos.load(ordering: .relaxed) }

    private func timed<T>(_ body: () throws(KVMError) -> T) throws(KVMError) -> T {
        let start = MonotonicClock.nanos()
        defer { nanos.add(MonotonicClock.nanos() - start, ordering: .relaxed) }
        return try body()
    }

    public func create(_ slot: Memslot) throws(KVMError) {
        try timed { () throws(KVMError) in
            switch slot.store {
            case .boot:
                try vm.setMemoryRegion(
                    slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                    memory: stores.bootRegion, offset: Int(slot.offset))
            case .sharedStore:
                try vm.setMemoryRegion(
                    slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                    memory: stores.sharedMemory, offset: Int(slot.offset))
            case .privateStore:
                if guestMemfdSlots, let file = stores.privateFile {
                    try vm.setMemoryRegion2(
                        slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                        memory: stores.privateMemory, offset: Int(slot.offset),
                        guestMemfd: file, guestMemfdOffset: slot.offset)
                } else if let memory = stores.privateMemory {
                    try vm.setMemoryRegion(
                        slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                        memory: memory, offset: Int(slot.offset))
                } else {
                    throw KVMError("KVM_SET_USER_MEMORY_REGION", errno: 22, hint: "no private store to map")
                }
            case .privateView, .sharedView:
                guard let views = stores.guestViews else {
                    throw KVMError("KVM_SET_USER_MEMORY_REGION", errno: 22, hint: "no guest views to map")
                }
                let view = slot.store == .privateView ? views.privateView : views.sharedView
                if slot.store == .privateView, guestMemfdSlots, let file = stores.privateFile {
                    try vm.setMemoryRegion2(
                        slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                        memory: view, offset: Int(slot.offset),
                        guestMemfd: file, guestMemfdOffset: slot.offset)
                } else {
                    try vm.setMemoryRegion(
                        slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                        memory: view, offset: Int(slot.offset))
                }
            case .attributed:
                try vm.setMemoryRegion2(
                    slot: slot.slot, guestPhysicalAddress: slot.gpa, size: slot.size,
                    memory: stores.sharedMemory, offset: Int(slot.offset),
                    guestMemfd: stores.privateFile, guestMemfdOffset: slot.offset)
            }
        }
    }

    public func delete(_ slot: Memslot) throws(KVMError) {
        try timed { () throws(KVMError) in
            if (slot.store == .privateStore || slot.store == .privateView) && guestMemfdSlots
                || slot.store == .attributed
            {
                try vm.setMemoryRegion2(
                    slot: slot.slot, guestPhysicalAddress: slot.gpa, size: 0, memory: nil, guestMemfd: nil)
            } else {
                try vm.deleteMemoryRegion(slot: slot.slot)
            }
        }
    }

    public func setAttributes(_ range: PageRange, private isPrivate: Bool) throws(KVMError) {
        try timed { () throws(KVMError) in
            try vm.setMemoryAttributes(
                guestPhysicalAddress: range.start, size: range.size,
                attributes: isPrivate ? MemoryAttribute.private : 0)
        }
    }

    public func discardPrivate(offset: UInt64, length: UInt64) throws(KVMError) {
        try timed { () throws(KVMError) in
            if let file = stores.privateFile {
                try file.punchHole(offset: offset, length: length)
            } else if let memory = stores.privateMemory {
                try memory.discardFile(at: Int(offset), count: Int(length))
            }
        }
    }

    public func discardShared(offset: UInt64, length: UInt64) throws(KVMError) {
        try timed { () throws(KVMError) in
            try stores.sharedMemory.discardFile(at: Int(offset), count: Int(length))
        }
    }

    public func setAccess(_ range: PageRange, view state: PageState, open: Bool) throws(KVMError) {
        try timed { () throws(KVMError) in
            guard let views = stores.guestViews else {
                throw KVMError("mprotect", errno: 22, hint: "this VM has no guest views (memslot mechanism)")
            }
            let view = state == .private ? views.privateView : views.sharedView
            try view.protect(at: Int(range.start - stores.dataRAM.start), count: Int(range.size), accessible: open)
        }
    }
}
