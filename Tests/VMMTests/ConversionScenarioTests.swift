import Foundation
import KVM
import MemoryModel
import TestSupport
import Testing

@testable import VMM

/// The kernel selftest scenarios and MemGate's conversion rules, on the real
/// /dev/kvm with the alias backend under both of its mechanisms (the attributes
/// backend needs a VM type with private memory; see AttributesBackendHostTests).
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ConversionScenarioTests {
    let fixture: ConversionFixture

    init() throws {
        fixture = try ConversionFixture()
    }

    /// The same conversions requested with VMCALL: each arrives as KVM_EXIT_HYPERCALL (MAP_GPA_RANGE).
    // Needs KVM_CAP_EXIT_HYPERCALL with MAP_GPA_RANGE and a probe that saw the exit reach userspace.
    @Test(
        .enabled(
            if: HostCapabilities.current.conversionTransport == .vmcall,
            "requires VMCALL conversions (KVM_CAP_EXIT_HYPERCALL for MAP_GPA_RANGE, and the probe's exit reaching the agent); this host converts through the PV port"
        ))
    func privateMemConversionsOverVMCALL() throws {
        let harness = SelftestHarness()
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "conversions", commandLine: "keep", initialState: .shared,
            policy: try fixture.policy(#"{"defaults":{"discard":false}}"#), transport: .vmcall,
            events: events, harness: harness)
        let console = try fixture.run(vm)
        #expect(harness.failures == [])
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        let hypercalls = vm.exitCounts.first { $0.kind == "hypercall" }?.count ?? 0
        #expect(hypercalls > 0, "the guest converted through VMCALL")
        #expect(
            !events.conversions.isEmpty
                && events.conversions.allSatisfy { $0.decision == .applied && $0.trigger == .explicit })
    }

    /// private_mem_conversions_test: explicit conversions, then punch-hole imprecise and precise.
    @Test(arguments: AliasMechanism.allCases, [(1, false), (1, true), (2, false), (2, true)])
    func privateMemConversions(mechanism: AliasMechanism, vcpusAndDiscard: (Int, Bool)) throws {
        let (vcpus, discard) = vcpusAndDiscard
        let harness = SelftestHarness()
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "conversions", vcpus: vcpus, commandLine: discard ? "discard" : "keep",
            initialState: .shared,
            policy: try fixture.policy(#"{"defaults":{"discard":\#(discard)}}"#), mechanism: mechanism,
            events: events, harness: harness)
        let console = try fixture.run(vm)
        #expect(harness.failures == [])
        #expect(
            vm.state == .stopped && vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        for index in 0..<vcpus { #expect(console.contains("vcpu \(index) passed")) }

        let conversions = events.conversions
        #expect(!conversions.isEmpty)
        #expect(conversions.allSatisfy { $0.decision == .applied && $0.trigger == .explicit })
        #expect(
            conversions.allSatisfy {
                $0.policyVersion == SHA256.hex(Array(#"{"defaults":{"discard":\#(discard)}}"#.utf8))
            })
        let discarded = conversions.reduce(UInt64(0)) { $0 + $1.discardedBytes }
        #expect(discard ? discarded > 0 : discarded == 0)
        // The guest always uses the right alias, so nothing faults: not even with two vCPUs, whose
        // conversions never make another vCPU's pages unreachable (atomic under both mechanisms).
        #expect(events.faults.isEmpty, "\(events.faults)")
        #expect(vm.exitCounts.first { $0.kind == "mmio" }?.count == 0)
        #expect(vm.statistics.total(decision: .applied) == conversions.count)
        // Everything is shared again at the end.
        #expect(vm.pageStates.runs.count == 1 && vm.pageStates.sharedBytes == vm.pageStates.bounds.size)

        // The private store follows the host: guest_memfd where KVM makes mmap-able ones, memfd otherwise.
        let host = HostCapabilities.current
        #expect(
            (vm.stores.privateFile != nil) == host.mmapGuestMemfd,
            "mmap-able guest_memfd \(host.mmapGuestMemfd) (hidden: \(host.hidden)): the private store is \(vm.stores.privateFile == nil ? "memfd" : "guest_memfd")"
        )
        #expect(vm.stores.privateMemory != nil, "the alias backend maps its private store")
        vm.stop()
        // Freeing the VM leaves a guest_memfd usable: punch and re-allocate the whole file.
        if let file = vm.stores.privateFile {
            try file.punchHole(offset: 0, length: file.size)
            try file.allocate(offset: 0, length: file.size)
        }
    }

    /// private_mem_kvm_exits_test, case 1: the private page's memslot is deleted while a vCPU reads it.
    @Test(arguments: AliasMechanism.allCases)
    func backingDeletedUnderARunningVCPU(mechanism: AliasMechanism) throws {
        let harness = SelftestHarness()
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM("exits", mechanism: mechanism, events: events, harness: harness)
        try vm.start()
        for _ in 0..<2000 where harness.readyCount == 0 { usleep(1000) }
        #expect(harness.readyCount == 1)
        usleep(20_000)  // let the guest spin on its read
        let page = PageRange(start: vm.layout.dataRAM.lowerBound, size: 4096)
        let backend = try #require(vm.engine.backend as? AliasMemoryBackend)
        try backend.removeBacking(of: page, in: vm.pageStates)
        #expect(vm.waitUntilFinished(timeout: .seconds(10)))
        expectPrivateFaultWithoutBacking(vm, events: events, page: page)
    }

    /// private_mem_kvm_exits_test, case 2: the page is private but has no private backing at all.
    @Test(arguments: AliasMechanism.allCases)
    func privatePageWithoutBacking(mechanism: AliasMechanism) throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM("exits", mechanism: mechanism, events: events, harness: SelftestHarness())
        let page = PageRange(start: vm.layout.dataRAM.lowerBound, size: 4096)
        try #require(vm.engine.backend as? AliasMemoryBackend).removeBacking(of: page, in: vm.pageStates)
        _ = try fixture.run(vm, timeout: .seconds(10))
        expectPrivateFaultWithoutBacking(vm, events: events, page: page)
    }

    func expectPrivateFaultWithoutBacking(_ vm: VirtualMachine, events: InMemoryEventSink, page: PageRange) {
        #expect(vm.state == .faulted)
        #expect(vm.lifecycle.reason?.contains("has no backing") == true, "\(vm.lifecycle.reason ?? "")")
        let fault = events.faults.last
        #expect(fault?.flags == MemoryFaultRecord.flagPrivate)  // exactly PRIVATE, like KVM's report
        #expect(fault?.gpa == page.start)
        #expect(fault?.size == 4096)
        #expect(fault?.source == .emulated)
        // The VM stays inspectable.
        #expect(vm.pageStates.state(at: page.start) == .private)
        #expect(vm.statistics.faults[.emulated] == 1)
        #expect(events.conversions.isEmpty)
    }

    @Test(arguments: AliasMechanism.allCases, [false, true])
    func implicitConversionsBothWays(mechanism: AliasMechanism, discard: Bool) throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "implicit", policy: try fixture.policy(#"{"defaults":{"discard":\#(discard)}}"#),
            mechanism: mechanism, events: events)
        let console = try fixture.run(vm)
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "")")
        // The shared copy was never written: 0. The private copy keeps 0x11 unless discarded on the way to shared.
        #expect(console == "shared=0x0\nprivate=\(discard ? "0x0" : "0x11")\n")
        let gpa = vm.layout.dataRAM.lowerBound + 0x10000
        #expect(events.faults.map(\.gpa) == [gpa, gpa])
        #expect(events.faults.map(\.flags) == [0, MemoryFaultRecord.flagPrivate])
        #expect(events.conversions.map(\.direction) == [.toShared, .toPrivate])
        #expect(events.conversions.allSatisfy { $0.trigger == .implicit && $0.decision == .applied && $0.size == 4096 })
        // After going private again the host's shared copy holds the guest's 0x22 only when kept.
        #expect(vm.memory.readShared(gpa: gpa, count: 1) == [discard ? 0 : 0x22])
        #expect(vm.pageStates.state(at: gpa) == .private)
    }

    @Test(arguments: AliasMechanism.allCases, [ConversionDirection.toShared, .toPrivate])
    func deniedImplicitConversionStopsOnlyThatVM(mechanism: AliasMechanism, direction: ConversionDirection) throws {
        let events = InMemoryEventSink()
        let policy = try fixture.policy(
            #"{"rules":[{"match":{"trigger":"implicit","direction":"\#(direction.rawValue)"},"action":"deny","reason":"not here"}]}"#
        )
        let bystander = try fixture.makeVM("spin-io", commandLine: "3000")
        let vm = try fixture.makeVM("implicit", policy: policy, mechanism: mechanism, events: events)
        try bystander.start()
        _ = try fixture.run(vm)
        #expect(vm.state == .faulted)
        #expect(vm.lifecycle.reason?.contains("refused: not here") == true)
        let denied = try #require(events.conversions.last)
        #expect(denied.decision == .denied && denied.direction == direction && denied.reason == "not here")
        #expect(events.faults.count == events.conversions.count)
        let gpa = vm.layout.dataRAM.lowerBound + 0x10000
        #expect(vm.pageStates.state(at: gpa) == (direction == .toShared ? .private : .shared))
        #expect(bystander.waitUntilFinished(timeout: .seconds(30)) && bystander.lifecycle.exitStatus == 0)
    }

    func results(_ console: String) -> [Int64] {
        console.split(separator: "\n").compactMap { line in line.split(separator: "=").last.flatMap { Int64($0) } }
    }

    @Test(arguments: AliasMechanism.allCases)
    func invalidRequestsGetExactCodesAndChangeNothing(mechanism: AliasMechanism) throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "explicit",
            commandLine:
                "1:1:0 0:0:0 a7ffffffffff000:2:0 fffffffffffff000:2:0 0:1:20 0:1:3 2000000:1:0 a0:1:0 a1ff000:2:10",
            mechanism: mechanism, events: events)
        let before = vm.pageStates
        let console = try fixture.run(vm)
        // unaligned, zero pages, overflow x2, reserved bit, bad page size, outside RAM, boot region x2
        #expect(results(console) == Array(repeating: -22, count: 9), "\(console)")
        #expect(vm.pageStates == before)
        #expect(
            events.conversions.count == 9
                && events.conversions.allSatisfy { $0.decision == .invalid && $0.guestResult == -22 })
        #expect(events.conversions[0].reason.contains("not page aligned"))
        #expect(events.conversions[7].reason.contains("boot region"))
    }

    @Test(arguments: AliasMechanism.allCases)
    func explicitDeniedByRuleByMaxSharedAndByRate(mechanism: AliasMechanism) throws {
        // Rule: no sharing in the first 64 KiB of data RAM.
        let ruleVM = try fixture.makeVM(
            "explicit", commandLine: "0:1:0 10000:1:0",
            policy: try fixture.policy(
                #"{"rules":[{"match":{"direction":"to_shared","gpa":["0x0","0x210000"]},"action":"deny","reason":"low memory stays private"}]}"#
            ),
            mechanism: mechanism)
        #expect(results(try fixture.run(ruleVM)) == [-1, 0])
        #expect(ruleVM.pageStates.state(at: ruleVM.layout.dataRAM.lowerBound) == .private)
        #expect(ruleVM.pageStates.sharedBytes == 4096)

        // max_shared_bytes: two pages may be shared, a third may not; converting back is always fine.
        let limitVM = try fixture.makeVM(
            "explicit", commandLine: "0:2:0 10000:1:0 0:1:10 10000:1:0",
            policy: try fixture.policy(#"{"limits":{"max_shared_bytes":8192}}"#), mechanism: mechanism)
        #expect(results(try fixture.run(limitVM)) == [0, -1, 0, 0])
        #expect(limitVM.pageStates.sharedBytes == 8192)

        // max_conversions_per_second: a burst of 5 against a limit of 2 (a token returns only after 500 ms).
        let events = InMemoryEventSink()
        let rateVM = try fixture.makeVM(
            "explicit", commandLine: "0:1:0 0:1:10 0:1:0 0:1:10 0:1:0",
            policy: try fixture.policy(#"{"limits":{"max_conversions_per_second":2}}"#),
            mechanism: mechanism, events: events)
        #expect(results(try fixture.run(rateVM)) == [0, 0, -1, -1, -1])
        #expect(events.conversions.last?.reason.contains("max_conversions_per_second") == true)
        #expect(rateVM.pageStates.sharedBytes == 0)
    }

    @Test(arguments: AliasMechanism.allCases)
    func mappingLimitIsAClearErrorThatChangesNothing(mechanism: AliasMechanism) throws {
        let events = InMemoryEventSink()
        // One run = one slot (or one split of the host mappings). Sharing page 0x10 makes 3 runs; page 0x30 would make 5.
        let vm = try fixture.makeVM(
            "explicit", commandLine: "10000:1:0 30000:1:0", maxRuns: 3, mechanism: mechanism, events: events)
        let console = try fixture.run(vm)
        #expect(results(console) == [0, -7], "\(console)")
        let refused = try #require(events.conversions.last)
        let unit = mechanism == .memslot ? "memslots" : "page-state runs"
        #expect(
            refused.decision == .failed && refused.reason.contains("needs 5 \(unit) but the VM may use 3"),
            "\(refused.reason)")
        #expect(vm.pageStates.runs.count == 3)
        #expect(vm.lifecycle.exitStatus == 0)
    }
}
