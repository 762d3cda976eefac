import KVM
import MemoryModel

/// What every backend does the same way: host access to the stores, and
/// freeing the copy a conversion left behind.
public struct StoreAccess: Sendable {
    let stores: GuestStores
    let ops: MemoryOps

    init(stores: GuestStores, ops: MemoryOps) {
        self.stores = stores
        self.ops = ops
    }

    func read(gpa: UInt64, count: Int, as state: PageState) -> [UInt8]? {
        guard let (memory, offset) = stores.location(of: gpa, count: count, as: state) else { return nil }
        return memory.read(at: offset, count: count)
    }

    func write(_ bytes: [UInt8], gpa: UInt64, as state: PageState) -> Bool {
        guard let (memory, offset) = stores.location(of: gpa, count: bytes.count, as: state) else { return false }
        memory.write(bytes, at: offset)
        return true
    }

    /// Frees the `copy` (private or shared) of a data-RAM range.
    func discard(_ range: PageRange, copy: PageState) throws(KVMError) {
        let offset = range.start - stores.dataRAM.start
        if copy == .private {
            try ops.discardPrivate(offset: offset, length: range.size)
        } else {
            try ops.discardShared(offset: offset, length: range.size)
        }
    }

    /// After converting `changed` ranges to `state`, frees their old copies; returns the bytes freed.
    func discardOldCopies(_ changed: [PageRange], convertedTo state: PageState) throws(KVMError) -> UInt64 {
        var discarded: UInt64 = 0
        for part in changed {
            try discard(part, copy: state.opposite)
            discarded += part.size
        }
        return discarded
    }
}

extension PageStateMap {
    /// The parts of `range` not yet in `state` (what a conversion to `state` changes).
    func parts(of range: PageRange, notIn state: PageState) -> [PageRange] {
        runs(overlapping: range).filter { $0.state != state }.map { $0.range.clamped(to: range) }
    }
}
