import Foundation
import KVM
import Logging
import MemoryModel
import Synchronization
import Testing

@testable import VMM

/// A clock the test moves by hand.
final class ManualClock: EngineClock {
    private let now = Mutex<UInt64>(1_000_000_000)
    func monotonicNanos() -> UInt64 { now.withLock { $0 } }
    func wallNanos() -> UInt64 { now.withLock { $0 } + 1_700_000_000_000_000_000 }
    func advance(seconds: Double) { now.withLock { $0 += UInt64(seconds * 1e9) } }
}

/// The engine's decisions and records with a recording backend and a manual clock: no KVM.
@Suite struct ConversionEngineTests {
    let dataRAM = PageRange(start: 0x20_0000, size: 16 * 4096)
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func engine(
        policy: String, clock: ManualClock, events: InMemoryEventSink, ops: RecordingOps = RecordingOps(),
        runLimit: Int = 64, budget: UInt64? = nil
    ) throws -> ConversionEngine {
        let stores = GuestStores(
            bootRegion: try HostMemory.anonymous(size: 0x20_0000), dataRAM: dataRAM, privateFile: nil,
            privateMemory: try HostMemory.anonymous(size: Int(dataRAM.size)),
            sharedMemory: try HostMemory.anonymous(size: Int(dataRAM.size)))
        let initial = PageStateMap(bounds: dataRAM, initial: .private)
        let backend = try ProtectAliasBackend(
            stores: stores, ops: ops, sharedMask: 1 << 40, initial: initial, firstSlot: 1, runLimit: runLimit)
        return ConversionEngine(
            vmID: 9, vmName: "engine", ramSize: 0x40_0000, initial: initial, backend: backend,
            policies: PolicyStore(try VersionedPolicy(document: Array(policy.utf8))), sink: events,
            clock: clock, recordingBudget: budget, logger: logger)
    }

    func toShared(_ page: UInt64) -> MapGPARangeCall {
        MapGPARangeCall(gpa: dataRAM.start + page * 4096, pageCount: 1, attributes: 0)
    }

    @Test func rateLimitAndTimestampsFollowTheInjectedClock() throws {
        let clock = ManualClock()
        let events = InMemoryEventSink()
        let engine = try engine(policy: #"{"limits":{"max_conversions_per_second":2}}"#, clock: clock, events: events)
        #expect(engine.explicit(toShared(0), vcpu: 0).guestResult == 0)
        #expect(engine.explicit(toShared(1), vcpu: 0).guestResult == 0)
        #expect(engine.explicit(toShared(2), vcpu: 0).guestResult == GuestErrorCode.permission.rawValue)
        clock.advance(seconds: 1)
        #expect(engine.explicit(toShared(2), vcpu: 0).guestResult == 0)
        #expect(events.conversions.map(\.decision) == [.applied, .applied, .denied, .applied])
        #expect(events.conversions.last?.requestedNanos == clock.wallNanos())
        #expect(engine.pageStates.sharedBytes == 3 * 4096)
    }

    @Test func maxSharedBytesCountsConversionsInFlight() throws {
        let clock = ManualClock()
        let events = InMemoryEventSink()
        let engine = try engine(policy: #"{"limits":{"max_shared_bytes":8192}}"#, clock: clock, events: events)
        // Two vCPUs racing for the last shared page: exactly one wins, whatever the interleaving.
        let results = Mutex<[Int64]>([])
        #expect(engine.explicit(toShared(0), vcpu: 0).guestResult == 0)
        let group = DispatchGroup()
        for vcpu in 1...2 {
            group.enter()
            Thread {
                let result = engine.explicit(toShared(UInt64(vcpu * 4)), vcpu: UInt32(vcpu)).guestResult
                results.withLock { $0.append(result) }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(results.withLock { $0.sorted() } == [GuestErrorCode.permission.rawValue, 0])
        #expect(engine.pageStates.sharedBytes == 8192)
    }

    @Test func aMappingLimitIsTheGuestsErrorNotTheVMs() throws {
        let events = InMemoryEventSink()
        let engine = try engine(policy: "{}", clock: ManualClock(), events: events, runLimit: 3)
        #expect(engine.explicit(toShared(4), vcpu: 0) == ExplicitOutcome(guestResult: 0))
        // A second island would make 5 runs: E2BIG for the guest, nothing changed, the VM runs on.
        #expect(engine.explicit(toShared(8), vcpu: 0) == ExplicitOutcome(guestResult: GuestErrorCode.tooBig.rawValue))
        #expect(engine.pageStates.runs.count == 3)
        let refused = try #require(events.conversions.last)
        #expect(refused.decision == .failed && refused.reason.contains("needs 5 page-state runs but the VM may use 3"))
    }

    /// Where a closed page fails KVM_RUN with memory_fault data, the GPA names the alias used.
    @Test func memoryFaultExitsThroughAnAliasAreDecodedAsThatAlias() throws {
        let engine = try engine(policy: "{}", clock: ManualClock(), events: InMemoryEventSink())
        let page = PageRange(start: dataRAM.start + 0x3000, size: 4096)
        let viaShared = VCPURunner.guestFault(
            MemoryFaultExit(flags: 0, gpa: (page.start + 0x10) | 1 << 40, size: 8), backend: engine.backend)
        #expect(viaShared == GuestFault(range: page, wantsPrivate: false, source: .kvm, access: nil))
        let viaPrivate = VCPURunner.guestFault(
            MemoryFaultExit(flags: 0, gpa: page.start, size: 4096), backend: engine.backend)
        #expect(viaPrivate == GuestFault(range: page, wantsPrivate: true, source: .kvm, access: nil))
        // Outside data RAM (and a size that would overflow): the range stays what KVM said, and the engine refuses it.
        let outside = VCPURunner.guestFault(
            MemoryFaultExit(flags: 8, gpa: UInt64.max - 10, size: 100), backend: engine.backend)
        #expect(outside.wantsPrivate && outside.range.start == UInt64.max & ~0xFFF)
        let nearTheTop = VCPURunner.guestFault(
            MemoryFaultExit(flags: 0, gpa: UInt64.max - 5000, size: 1), backend: engine.backend)
        #expect(nearTheTop.range.end == UInt64.max & ~0xFFF)
        if case .stopVM(let reason) = engine.fault(outside, vcpu: 0) {
            #expect(reason.contains("outside data RAM"))
        } else {
            Issue.record("a fault outside data RAM must stop the VM, not convert")
        }
    }

    /// A guest sending invalid and denied requests as fast as it can adds at most the
    /// budget's rows per second; the rest become one counted row per second and kind.
    @Test func theRecordingBudgetBoundsRowsAndCountsTheRest() throws {
        let clock = ManualClock()
        let events = InMemoryEventSink()
        let engine = try engine(policy: #"{"defaults":{"explicit":"deny"}}"#, clock: clock, events: events, budget: 5)
        let invalid = MapGPARangeCall(gpa: 1, pageCount: UInt64.max, attributes: 0)
        for _ in 0..<50 {
            #expect(engine.explicit(invalid, vcpu: 0).guestResult == GuestErrorCode.invalid.rawValue)
            #expect(engine.explicit(toShared(0), vcpu: 0).guestResult == GuestErrorCode.permission.rawValue)
        }
        #expect(events.conversions.filter { $0.decision == .invalid }.count == 5)
        #expect(events.conversions.filter { $0.decision == .denied }.count == 5)
        // Invalid rows keep the page count the guest gave; their size is 0.
        #expect(
            events.conversions.first { $0.decision == .invalid }.map { ($0.size, $0.requestedPages) } ?? (1, nil) == (
                0, UInt64.max
            ))
        // Statistics still count every event.
        #expect(engine.statistics.total(decision: .invalid) == 50 && engine.statistics.total(decision: .denied) == 50)
        engine.flushAggregates()
        let second = clock.wallNanos() / 1_000_000_000
        #expect(
            Set(events.aggregates.map { "\($0.kind) \($0.events) \($0.second == second)" }) == [
                "invalid 45 true", "denied 45 true",
            ])
    }
}
