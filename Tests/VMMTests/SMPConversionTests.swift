import Foundation
import KVM
import MemoryModel
import TestSupport
import Testing

@testable import VMM

/// Conversions on several vCPUs at once, under both alias mechanisms: from
/// every other vCPU's point of view a conversion is atomic.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct SMPConversionTests {
    let fixture: ConversionFixture

    init() throws {
        fixture = try ConversionFixture()
    }

    func mmioExits(_ vm: VirtualMachine) -> UInt64 {
        vm.exitCounts.first { $0.kind == "mmio" }?.count ?? .max
    }

    /// 4 vCPUs, each converting its own 64 KiB window 500 times both ways with a
    /// data check after every conversion: nothing faults, nothing stops.
    @Test(arguments: AliasMechanism.allCases, [true, false])
    func disjointWindowsOnFourVCPUs(mechanism: AliasMechanism, discard: Bool) throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "smp-convert", vcpus: 4, commandLine: "windows 500 \(discard ? "discard" : "keep")",
            policy: try fixture.policy(#"{"defaults":{"discard":\#(discard)}}"#),
            mechanism: mechanism, events: events)
        let console = try fixture.run(vm, timeout: .seconds(300))
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        #expect(console.contains("all vcpus passed"))
        #expect(
            events.faults.isEmpty,
            "\(events.faults.count) memory-fault rows, first: \(String(describing: events.faults.first))")
        #expect(vm.statistics.faultsWithoutConversion == 0)
        #expect(mmioExits(vm) == 0)
        #expect(vm.statistics.total(decision: .applied) == 4 * 1000)
        #expect(events.conversions.count == 4 * 1000)
        // Every window ends private, as it started.
        #expect(vm.pageStates.sharedBytes == 0)
    }

    /// One vCPU converts while another spins on a flag in an unconverted page and two
    /// add to a shared counter with LOCK CMPXCHG: the counter ends exact, nobody stops.
    @Test(arguments: AliasMechanism.allCases)
    func bystandersKeepRunningAndAtomicsStayAtomic(mechanism: AliasMechanism) throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "smp-convert", vcpus: 3, commandLine: "bystanders 300 discard",
            mechanism: mechanism, events: events)
        let console = try fixture.run(vm, timeout: .seconds(300))
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        let words = console.split(whereSeparator: { $0 == " " || $0 == "\n" })
        let counter = words.firstIndex(of: "counter").flatMap { UInt64(words[$0 + 1]) }
        let sum = words.firstIndex(of: "sum").flatMap { UInt64(words[$0 + 1]) }
        #expect(counter != nil && counter == sum && (sum ?? 0) > 0, "\(console)")
        #expect(events.faults.isEmpty)
        #expect(mmioExits(vm) == 0)
        #expect(vm.statistics.total(decision: .applied) == 600)
    }

    /// Conversions of disjoint ranges do not wait for each other under protect;
    /// memslot rewrites are one at a time by construction.
    @Test func conversionScopeFollowsTheMechanism() throws {
        let protect = try fixture.makeVM("hello", mechanism: .protect)
        let memslot = try fixture.makeVM("hello", mechanism: .memslot)
        #expect(protect.engine.backend.scope == .pageRange)
        #expect(memslot.engine.backend.scope == .wholeMemory)
        #expect(protect.memoryDescription.contains("alias (protect)"))
        #expect(memslot.memoryDescription.contains("alias (memslot)"))
    }
}
