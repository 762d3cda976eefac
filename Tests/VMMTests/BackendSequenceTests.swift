import KVM
import MemoryModel
import Synchronization
import Testing
@testable import VMM

/// Records what a backend asks of KVM instead of doing it.
final class RecordingOps: MemoryOps {
    enum Call: Equatable {
        case create(Memslot)
        case delete(UInt32)
        case attributes(PageRange, private: Bool)
        case discardPrivate(offset: UInt64, length: UInt64)
        case discardShared(offset: UInt64, length: UInt64)
    }

    private let log = Mutex<[Call]>([])
    var calls: [Call] { log.withLock { $0 } }
    func reset() { log.withLock { $0.removeAll() } }

    func create(_ slot: Memslot) throws(KVMError) { log.withLock { $0.append(.create(slot)) } }
    func delete(_ slot: Memslot) throws(KVMError) { log.withLock { $0.append(.delete(slot.slot)) } }
    func setAttributes(_ range: PageRange, private isPrivate: Bool) throws(KVMError) {
        log.withLock { $0.append(.attributes(range, private: isPrivate)) }
    }
    func discardPrivate(offset: UInt64, length: UInt64) throws(KVMError) {
        log.withLock { $0.append(.discardPrivate(offset: offset, length: length)) }
    }
    func discardShared(offset: UInt64, length: UInt64) throws(KVMError) {
        log.withLock { $0.append(.discardShared(offset: offset, length: length)) }
    }
}

/// Backend ioctl sequences on fabricated inputs: no KVM needed.
@Suite struct BackendSequenceTests {
    let page = PageRange.pageSize
    let dataRAM = PageRange(start: 0x20_0000, size: 16 * 4096)
    let mask: UInt64 = 1 << 40

    func stores() throws -> GuestStores {
        GuestStores(bootRegion: try HostMemory.anonymous(size: 0x20_0000), dataRAM: dataRAM, privateFile: nil,
                    privateMemory: try HostMemory.anonymous(size: Int(dataRAM.size)),
                    sharedMemory: try HostMemory.anonymous(size: Int(dataRAM.size)))
    }

    func converted(_ map: PageStateMap, _ range: PageRange, to state: PageState) -> PageStateMap {
        var after = map
        after.set(range, to: state)
        return after
    }

    @Test func attributesBackendSetsAttributesThenFreesTheOldCopy() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try AttributesBackend(stores: try stores(), ops: ops, slot: 1, initial: initial)
        #expect(ops.calls == [
            .create(Memslot(slot: 1, gpa: dataRAM.start, size: dataRAM.size, store: .attributed, offset: 0)),
            .attributes(dataRAM, private: true),
        ])
        ops.reset()
        let range = PageRange(start: dataRAM.start + page, size: 2 * page)
        let shared = converted(initial, range, to: .shared)
        let applied = try backend.apply(range, to: .shared, discard: true, before: initial, after: shared)
        #expect(ops.calls == [.attributes(range, private: false), .discardPrivate(offset: page, length: 2 * page)])
        #expect(applied.discardedBytes == 2 * page)
        ops.reset()
        // Back to private over a wider range, keeping the old copies: one ioctl, no discard.
        let wider = PageRange(start: dataRAM.start, size: 4 * page)
        _ = try backend.apply(wider, to: .private, discard: false, before: shared, after: converted(shared, wider, to: .private))
        #expect(ops.calls == [.attributes(wider, private: true)])
        ops.reset()
        // Converting pages already in the target state does nothing.
        _ = try backend.apply(wider, to: .private, discard: true, before: initial, after: initial)
        #expect(ops.calls.isEmpty)
        #expect(backend.aliasAccess(at: dataRAM.start | mask) == nil)
    }

    @Test func attributesBackendStartsSharedWithoutIoctls() throws {
        let ops = RecordingOps()
        _ = try AttributesBackend(stores: try stores(), ops: ops, slot: 1, initial: PageStateMap(bounds: dataRAM, initial: .shared))
        #expect(ops.calls.count == 1)
    }

    @Test func aliasBackendSplitsAndMergesSlots() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try AliasBackend(stores: try stores(), ops: ops, sharedMask: mask, initial: initial, firstSlot: 1, slotLimit: 8)
        #expect(ops.calls == [.create(Memslot(slot: 1, gpa: dataRAM.start, size: dataRAM.size, store: .privateStore, offset: 0))])
        ops.reset()
        let middle = PageRange(start: dataRAM.start + 4 * page, size: page)
        let split = converted(initial, middle, to: .shared)
        _ = try backend.apply(middle, to: .shared, discard: true, before: initial, after: split)
        // Delete before create (KVM rejects overlapping slots), then free the private copy.
        #expect(ops.calls.first == .delete(1))
        let created = ops.calls.compactMap { call -> Memslot? in if case .create(let slot) = call { slot } else { nil } }
        // Slot ids are an allocation detail; compare everything else.
        func shape(_ slot: Memslot) -> String { "\(slot.gpa) \(slot.size) \(slot.store) \(slot.offset)" }
        #expect(Set(created.map(shape)) == Set([
            Memslot(slot: 0, gpa: dataRAM.start, size: 4 * page, store: .privateStore, offset: 0),
            Memslot(slot: 0, gpa: middle.start | mask, size: page, store: .sharedStore, offset: 4 * page),
            Memslot(slot: 0, gpa: middle.end, size: 11 * page, store: .privateStore, offset: 5 * page),
        ].map(shape)))
        #expect(Set(created.map(\.slot)).count == 3)
        #expect(ops.calls.last == .discardPrivate(offset: 4 * page, length: page))
        #expect(backend.slotCount == 3)
        #expect(backend.isMapped(middle, in: split))
        ops.reset()
        // Back to private merges the three runs into one slot again.
        _ = try backend.apply(middle, to: .private, discard: false, before: split, after: initial)
        #expect(ops.calls.filter { if case .delete = $0 { true } else { false } }.count == 3)
        #expect(ops.calls.compactMap { if case .create(let s) = $0 { s.size } else { nil } } == [dataRAM.size])
        #expect(backend.slotCount == 1)
    }

    @Test func aliasBackendRefusesOverTheSlotLimitWithoutChanges() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try AliasBackend(stores: try stores(), ops: ops, sharedMask: mask, initial: initial, firstSlot: 1, slotLimit: 2)
        ops.reset()
        let middle = PageRange(start: dataRAM.start + 4 * page, size: page)
        #expect(throws: BackendError.memslotLimit(needed: 3, limit: 2)) {
            try backend.apply(middle, to: .shared, discard: true, before: initial, after: converted(initial, middle, to: .shared))
        }
        #expect(ops.calls.isEmpty)
        #expect(backend.slotCount == 1)
        // The edge page only splits in two: allowed.
        let edge = PageRange(start: dataRAM.start, size: page)
        _ = try backend.apply(edge, to: .shared, discard: false, before: initial, after: converted(initial, edge, to: .shared))
        #expect(backend.slotCount == 2)
    }

    @Test func aliasAccessClassification() throws {
        let backend = try AliasBackend(stores: try stores(), ops: RecordingOps(), sharedMask: mask,
                                       initial: PageStateMap(bounds: dataRAM, initial: .private), firstSlot: 1, slotLimit: 8)
        let gpa = dataRAM.start + 0x1234
        #expect(backend.aliasAccess(at: gpa) == AliasAccess(page: PageRange(start: dataRAM.start + 0x1000, size: 4096), gpa: gpa, viaPrivateAddress: true))
        #expect(backend.aliasAccess(at: gpa | mask)?.viaPrivateAddress == false)
        #expect(backend.aliasAccess(at: 0x1000 | mask) == nil)  // boot region alias: not guest memory
        #expect(backend.aliasAccess(at: dataRAM.end) == nil)
    }
}
