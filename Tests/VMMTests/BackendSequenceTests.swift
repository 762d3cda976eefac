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
        case access(PageRange, view: PageState, open: Bool)
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
    /// Makes the access change after `failAccessAt` more succeed fail with `failAccessErrno` (tests of the undo path).
    let failAccessAt = Mutex<Int?>(nil)
    let failAccessErrno = Mutex<Int32>(12)
    func setAccess(_ range: PageRange, view state: PageState, open: Bool) throws(KVMError) {
        let fail = failAccessAt.withLock { remaining -> Bool in
            guard let count = remaining else { return false }
            remaining = count - 1
            return count == 0
        }
        if fail { throw KVMError("mprotect", errno: failAccessErrno.withLock { $0 }) }
        log.withLock { $0.append(.access(range, view: state, open: open)) }
    }
}

/// Backend ioctl sequences on fabricated inputs: no KVM needed.
@Suite struct BackendSequenceTests {
    let page = PageRange.pageSize
    let dataRAM = PageRange(start: 0x20_0000, size: 16 * 4096)
    let mask: UInt64 = 1 << 40

    func stores() throws -> GuestStores {
        GuestStores(
            bootRegion: try HostMemory.anonymous(size: 0x20_0000), dataRAM: dataRAM, privateFile: nil,
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
        let backend = try AttributesBackend(
            stores: try stores(), ops: ops, slot: 1, initial: initial, privacyFromAttributes: false)
        #expect(
            ops.calls == [
                .create(Memslot(slot: 1, gpa: dataRAM.start, size: dataRAM.size, store: .attributed, offset: 0)),
                .attributes(dataRAM, private: true),
            ])
        ops.reset()
        let range = PageRange(start: dataRAM.start + page, size: 2 * page)
        let shared = converted(initial, range, to: .shared)
        let applied = try backend.apply(range, to: .shared, discard: true, before: initial)
        #expect(ops.calls == [.attributes(range, private: false), .discardPrivate(offset: page, length: 2 * page)])
        #expect(applied.discardedBytes == 2 * page)
        ops.reset()
        // Back to private over a wider range, keeping the old copies: one ioctl, no discard.
        let wider = PageRange(start: dataRAM.start, size: 4 * page)
        _ = try backend.apply(wider, to: .private, discard: false, before: shared)
        #expect(ops.calls == [.attributes(wider, private: true)])
        ops.reset()
        // Converting pages already in the target state does nothing.
        _ = try backend.apply(wider, to: .private, discard: true, before: initial)
        #expect(ops.calls.isEmpty)
        #expect(backend.aliasAccess(at: dataRAM.start | mask) == nil)
    }

    @Test func attributesBackendStartsSharedWithoutIoctls() throws {
        let ops = RecordingOps()
        _ = try AttributesBackend(
            stores: try stores(), ops: ops, slot: 1, initial: PageStateMap(bounds: dataRAM, initial: .shared),
            privacyFromAttributes: false)
        #expect(ops.calls.count == 1)
    }

    @Test func memslotMechanismSplitsAndMergesSlots() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try MemslotAliasBackend(
            stores: try stores(), ops: ops, sharedMask: mask, initial: initial, firstSlot: 1, slotLimit: 8, gate: nil)
        #expect(
            ops.calls == [
                .create(Memslot(slot: 1, gpa: dataRAM.start, size: dataRAM.size, store: .privateStore, offset: 0))
            ])
        ops.reset()
        let middle = PageRange(start: dataRAM.start + 4 * page, size: page)
        let split = converted(initial, middle, to: .shared)
        _ = try backend.apply(middle, to: .shared, discard: true, before: initial)
        // Delete before create (KVM rejects overlapping slots), then free the private copy.
        #expect(ops.calls.first == .delete(1))
        let created = ops.calls.compactMap { call -> Memslot? in if case .create(let slot) = call { slot } else { nil }
        }
        // Slot ids are an allocation detail; compare everything else.
        func shape(_ slot: Memslot) -> String { "\(slot.gpa) \(slot.size) \(slot.store) \(slot.offset)" }
        #expect(
            Set(created.map(shape))
                == Set(
                    [
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
        _ = try backend.apply(middle, to: .private, discard: false, before: split)
        #expect(ops.calls.filter { if case .delete = $0 { true } else { false } }.count == 3)
        #expect(ops.calls.compactMap { if case .create(let s) = $0 { s.size } else { nil } } == [dataRAM.size])
        #expect(backend.slotCount == 1)
    }

    @Test func memslotMechanismRefusesOverTheSlotLimitWithoutChanges() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try MemslotAliasBackend(
            stores: try stores(), ops: ops, sharedMask: mask, initial: initial, firstSlot: 1, slotLimit: 2, gate: nil)
        ops.reset()
        let middle = PageRange(start: dataRAM.start + 4 * page, size: page)
        #expect(throws: BackendError.mappingLimit(needed: 3, limit: 2, of: "memslots")) {
            try backend.apply(middle, to: .shared, discard: true, before: initial)
        }
        #expect(ops.calls.isEmpty)
        #expect(backend.slotCount == 1)
        // The edge page only splits in two: allowed.
        let edge = PageRange(start: dataRAM.start, size: page)
        _ = try backend.apply(edge, to: .shared, discard: false, before: initial)
        #expect(backend.slotCount == 2)
    }

    @Test func aliasAccessClassification() throws {
        let backend = try MemslotAliasBackend(
            stores: try stores(), ops: RecordingOps(), sharedMask: mask,
            initial: PageStateMap(bounds: dataRAM, initial: .private), firstSlot: 1, slotLimit: 8, gate: nil)
        let gpa = dataRAM.start + 0x1234
        #expect(
            backend.aliasAccess(at: gpa)
                == AliasAccess(
                    page: PageRange(start: dataRAM.start + 0x1000, size: 4096), gpa: gpa, viaPrivateAddress: true))
        #expect(backend.aliasAccess(at: gpa | mask)?.viaPrivateAddress == false)
        #expect(backend.aliasAccess(at: 0x1000 | mask) == nil)  // boot region alias: not guest memory
        #expect(backend.aliasAccess(at: dataRAM.end) == nil)
    }

    func protectBackend(_ ops: RecordingOps, initial: PageStateMap, runLimit: Int = 8) throws -> ProtectAliasBackend {
        try ProtectAliasBackend(
            stores: try stores(), ops: ops, sharedMask: mask, initial: initial, firstSlot: 1, runLimit: runLimit)
    }

    @Test func protectMechanismMapsBothAliasesOnceAndClosesTheOtherView() throws {
        let ops = RecordingOps()
        var initial = PageStateMap(bounds: dataRAM, initial: .private)
        let sharedStart = PageRange(start: dataRAM.start, size: 2 * page)
        initial.set(sharedStart, to: .shared)
        _ = try protectBackend(ops, initial: initial)
        let rest = PageRange(start: sharedStart.end, end: dataRAM.end)
        #expect(
            ops.calls == [
                .access(sharedStart, view: .private, open: false),
                .access(rest, view: .shared, open: false),
                .create(Memslot(slot: 1, gpa: dataRAM.start, size: dataRAM.size, store: .privateView, offset: 0)),
                .create(Memslot(slot: 2, gpa: dataRAM.start | mask, size: dataRAM.size, store: .sharedView, offset: 0)),
            ])
    }

    @Test func protectMechanismOpensTheNewViewBeforeClosingTheOld() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try protectBackend(ops, initial: initial)
        ops.reset()
        let range = PageRange(start: dataRAM.start + 4 * page, size: 2 * page)
        let applied = try backend.apply(range, to: .shared, discard: true, before: initial)
        // No memslot is touched, and the page is never closed at both addresses.
        #expect(
            ops.calls == [
                .access(range, view: .shared, open: true),
                .access(range, view: .private, open: false),
                .discardPrivate(offset: 4 * page, length: 2 * page),
            ])
        #expect(applied.discardedBytes == 2 * page)
        #expect(backend.scope == .pageRange)
        ops.reset()
        // Already shared: nothing to do.
        _ = try backend.apply(range, to: .shared, discard: true, before: converted(initial, range, to: .shared))
        #expect(ops.calls.isEmpty)
    }

    @Test func protectMechanismRefusesOverTheRunLimitAndUndoesAFailedClose() throws {
        let ops = RecordingOps()
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try protectBackend(ops, initial: initial, runLimit: 2)
        ops.reset()
        let middle = PageRange(start: dataRAM.start + 4 * page, size: page)
        #expect(throws: BackendError.mappingLimit(needed: 3, limit: 2, of: "page-state runs")) {
            try backend.apply(middle, to: .shared, discard: true, before: initial)
        }
        #expect(ops.calls.isEmpty)
        // The close fails with ENOMEM (the process is out of mappings): the open is undone and
        // the conversion is refused like any mapping limit, so the VM runs on.
        let edge = PageRange(start: dataRAM.start, size: page)
        ops.failAccessAt.withLock { $0 = 1 }
        #expect {
            try backend.apply(edge, to: .shared, discard: true, before: initial)
        } throws: { error in
            guard case .mappingLimit(_, _, let what)? = error as? BackendError else { return false }
            return what.contains("vm.max_map_count")
        }
        #expect(ops.calls == [.access(edge, view: .shared, open: true), .access(edge, view: .shared, open: false)])
        // Any other failure is the backend breaking: the errno is kept.
        ops.reset()
        ops.failAccessErrno.withLock { $0 = 22 }
        ops.failAccessAt.withLock { $0 = 0 }
        #expect(throws: BackendError.kvm(KVMError("mprotect", errno: 22))) {
            try backend.apply(edge, to: .shared, discard: true, before: initial)
        }
        #expect(ops.calls.isEmpty)
    }

    @Test func runLimitKeepsEveryVMInsideTheProcessMappingBudget() {
        #expect(ProtectAliasBackend.runLimit(maxMapCount: 65530, vms: 64) == 447)
        #expect(ProtectAliasBackend.runLimit(maxMapCount: 65530, vms: 1) == 4096)
        #expect(ProtectAliasBackend.runLimit(maxMapCount: 10_000, vms: 4096) == 64)
        for vms in [1, 8, 64, 512] {
            let limit = ProtectAliasBackend.runLimit(maxMapCount: 1 << 20, vms: vms)
            #expect(limit <= 4096 && 2 * limit * vms <= (1 << 20) - 8192)
        }
    }
}

/// The alias probe's decision, by outcome, without KVM.
@Suite struct AliasProbeDecisionTests {
    @Test func onlyAnExitWithTheAddressChoosesProtect() {
        #expect(AliasProbeOutcome.mmioExit.mechanism == .protect)
        #expect(AliasProbeOutcome.memoryFaultExit.mechanism == .protect)
        #expect(AliasProbeOutcome.runFailed.mechanism == .memslot)
        #expect(AliasProbeOutcome.noExit.mechanism == .memslot)
        #expect(AliasProbeOutcome.unavailable.mechanism == .memslot)
    }

    func statistics(faults source: EventSource?, converted: Bool) -> ConversionStatistics {
        var statistics = ConversionStatistics()
        if let source {
            statistics.count(
                MemoryFaultRecord(
                    vmID: 1, vm: "p", vcpu: 0, timeNanos: 0, gpa: 0x20_0000, size: 4096, flags: 0, source: source))
        }
        if converted {
            statistics.count(
                ConversionRecord(
                    vmID: 1, vm: "p", vcpu: 0, requestedNanos: 0, completedNanos: 1, gpa: 0x20_0000, size: 4096,
                    direction: .toShared, trigger: .implicit, decision: .applied, reason: "", policyVersion: "v",
                    source: .emulated, discardedBytes: 0, guestResult: 0))
        }
        return statistics
    }

    @Test func classifiesHowTheProbeVMEnded() {
        let status = AliasProbe.probeExitStatus
        #expect(
            AliasProbe.classify(
                exitStatus: status, failure: nil, statistics: statistics(faults: .emulated, converted: true)
            ).outcome == .mmioExit)
        #expect(
            AliasProbe.classify(exitStatus: status, failure: nil, statistics: statistics(faults: .kvm, converted: true))
                .outcome == .memoryFaultExit)
        #expect(
            AliasProbe.classify(exitStatus: status, failure: nil, statistics: statistics(faults: nil, converted: false))
                .outcome == .noExit)
        let failed = AliasProbe.classify(
            exitStatus: nil, failure: "vCPU 0: KVM_RUN failed: Bad address (EFAULT)",
            statistics: statistics(faults: nil, converted: false))
        #expect(failed.outcome == .runFailed && failed.mechanism == .memslot && failed.detail.contains("EFAULT"))
    }
}
