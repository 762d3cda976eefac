import Foundation
import KVM
import MemoryModel
import TestSupport
import Testing

@testable import VMM

/// The attributes backend on a real private-memory KVM (`make check-privmem` runs these
/// inside the nested host: our own kernel with KVM_SW_PROTECTED_VM under QEMU). On hosts
/// without private memory Swift Testing lists them as skipped, with the reason.
// Needs what the attributes backend needs: a private-memory VM type, guest_memfd, USER_MEMORY2, MEMORY_FAULT_INFO.
@Suite(
    .enabled(
        if: HostCapabilities.current.attributesBackend,
        "private-memory tests skipped: this host's KVM cannot run the attributes backend (no PRIVATE memory attribute, guest_memfd, USER_MEMORY2 or MEMORY_FAULT_INFO; run make check-privmem)"
    ))
struct PrivateMemoryTests {
    let fixture: ConversionFixture

    init() throws {
        fixture = try ConversionFixture()
    }

    func results(_ console: String) -> [Int64] {
        console.split(separator: "\n").compactMap { line in line.split(separator: "=").last.flatMap { Int64($0) } }
    }

    @Test func attributesVMsGetThePrivateMemoryVMType() throws {
        let type = HostCapabilities.current.capabilities?.privateMemoryVMType
        #expect(type?.supportsPrivateMemory == true)
        let vm = try fixture.makeVM("hello", backend: .attributes)
        #expect(vm.backendKind == .attributes && vm.memoryDescription.hasPrefix("attributes"))
        #expect(vm.kvmVM.type == type)
    }

    /// private_mem_conversions_test on the attributes backend: 1 and 2 vCPUs, discard on and off;
    /// the harness checks what the host sees at every step (only shared data; discarded pages zero).
    @Test(arguments: [(1, false), (1, true), (2, false), (2, true)])
    func selftestConversions(vcpusAndDiscard: (Int, Bool)) throws {
        let (vcpus, discard) = vcpusAndDiscard
        let harness = SelftestHarness()
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "conversions", vcpus: vcpus, commandLine: discard ? "discard" : "keep", initialState: .shared,
            policy: try fixture.policy(#"{"defaults":{"discard":\#(discard)}}"#),
            backend: .attributes, events: events, harness: harness)
        let console = try fixture.run(vm, timeout: .seconds(600))
        #expect(harness.failures == [])
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        for index in 0..<vcpus { #expect(console.contains("vcpu \(index) passed")) }
        #expect(
            !events.conversions.isEmpty
                && events.conversions.allSatisfy { $0.decision == .applied && $0.trigger == .explicit })
        let discarded = events.conversions.reduce(UInt64(0)) { $0 + $1.discardedBytes }
        #expect(discard ? discarded > 0 : discarded == 0)
        #expect(vm.pageStates.runs.count == 1 && vm.pageStates.sharedBytes == vm.pageStates.bounds.size)
    }

    @Test func invalidRequestsGetExactCodesAndChangeNothing() throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "explicit",
            commandLine:
                "1:1:0 0:0:0 a7ffffffffff000:2:0 fffffffffffff000:2:0 0:1:20 0:1:3 2000000:1:0 a0:1:0 a1ff000:2:10",
            backend: .attributes, events: events)
        let before = vm.pageStates
        let console = try fixture.run(vm)
        #expect(results(console) == Array(repeating: -22, count: 9), "\(console)")
        #expect(vm.pageStates == before)
        #expect(
            events.conversions.count == 9
                && events.conversions.allSatisfy { $0.decision == .invalid && $0.guestResult == -22 })
    }

    @Test func policyRuleSharedBytesAndRateLimitDeny() throws {
        let ruleVM = try fixture.makeVM(
            "explicit", commandLine: "0:1:0 10000:1:0",
            policy: try fixture.policy(
                #"{"rules":[{"match":{"direction":"to_shared","gpa":["0x0","0x210000"]},"action":"deny","reason":"low memory stays private"}]}"#
            ),
            backend: .attributes)
        #expect(results(try fixture.run(ruleVM)) == [-1, 0])
        #expect(ruleVM.pageStates.sharedBytes == 4096)
        let limitVM = try fixture.makeVM(
            "explicit", commandLine: "0:2:0 10000:1:0 0:1:10 10000:1:0",
            policy: try fixture.policy(#"{"limits":{"max_shared_bytes":8192}}"#), backend: .attributes)
        #expect(results(try fixture.run(limitVM)) == [0, -1, 0, 0])
        #expect(limitVM.pageStates.sharedBytes == 8192)
        let rateVM = try fixture.makeVM(
            "explicit", commandLine: "0:1:0 0:1:10 0:1:0 0:1:10 0:1:0",
            policy: try fixture.policy(#"{"limits":{"max_conversions_per_second":2}}"#), backend: .attributes)
        #expect(results(try fixture.run(rateVM)) == [0, 0, -1, -1, -1])
        #expect(rateVM.pageStates.sharedBytes == 0)
    }

    /// A 2 MiB page-size request (page-size field 1) and one straddling the end of data RAM.
    @Test func largeAndStraddlingRequests() throws {
        let vm = try fixture.makeVM("explicit", commandLine: "0:200:1 0:200:11 1dff000:2:0", backend: .attributes)
        let console = try fixture.run(vm)
        #expect(results(console) == [0, 0, -22], "\(console)")
        #expect(vm.pageStates.sharedBytes == 0)
    }

    /// Real exit 39 (a): data RAM mapped without its guest_memfd while its pages are private.
    /// The access cannot be satisfied: KVM reports KVM_EXIT_MEMORY_FAULT with the PRIVATE flag,
    /// the agent records it (source kvm) and stops this VM alone, naming the GPA.
    @Test func aPrivatePageWithoutItsGuestMemfdIsARealMemoryFault() throws {
        let events = InMemoryEventSink()
        let bystander = try fixture.makeVM("spin-io", commandLine: "2000", backend: .attributes)
        let vm = try fixture.makeVM("exits", backend: .attributes, events: events, harness: SelftestHarness())
        try #require(vm.engine.backend as? AttributesBackend).removePrivateStore()
        try bystander.start()
        _ = try fixture.run(vm, timeout: .seconds(60))
        let page = vm.layout.dataRAM.lowerBound
        #expect(vm.state == .faulted)
        #expect(
            vm.lifecycle.reason?.contains("gpa 0x\(String(page, radix: 16))") == true, "\(vm.lifecycle.reason ?? "")")
        let fault = try #require(events.faults.first)
        #expect(
            fault.source == .kvm && fault.flags == MemoryFaultRecord.flagPrivate && fault.gpa == page
                && fault.size == 4096)
        #expect(events.conversions.isEmpty, "a fault on a sw_protected VM never converts")
        #expect((vm.exitCounts.first { $0.kind == "memory_fault" }?.count ?? 0) >= 1)
        #expect(bystander.waitUntilFinished(timeout: .seconds(120)) && bystander.lifecycle.exitStatus == 0)
        print(
            "privmem: exit39_handled=\(vm.exitCounts.first { $0.kind == "memory_fault" }?.count ?? 0) (no guest_memfd)")
        if vm.state == .faulted, fault.source == .kvm { CapabilityLedger.ran(.memoryFaultExit, "no guest_memfd") }
    }

    /// Real exit 39 (b): one vCPU converts a window back and forth while another reads and
    /// writes it. An access whose page's attribute changes under it is reported as exit 39;
    /// each is retried and completes, nothing is converted for it, and the guest exits 0.
    @Test func accessesRacingConversionsAreRetried() throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "smp-convert", vcpus: 2, commandLine: "race 300 keep", backend: .attributes, events: events)
        let console = try fixture.run(vm, timeout: .seconds(600))
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        #expect(console.contains("race done"))
        #expect(
            events.conversions.count == 600
                && events.conversions.allSatisfy { $0.trigger == .explicit && $0.decision == .applied })
        #expect(events.faults.allSatisfy { $0.source == .kvm })
        let exits = vm.exitCounts.first { $0.kind == "memory_fault" }?.count ?? 0
        #expect(UInt64(vm.statistics.faultsWithoutConversion) == exits, "every exit 39 was settled by a retry")
        print("privmem: exit39_handled=\(exits) (accesses racing 600 conversions)")
    }

    /// 2 vCPUs converting disjoint windows: no false fault rows, exact data.
    @Test func disjointWindowsOnTwoVCPUs() throws {
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "smp-convert", vcpus: 2, commandLine: "windows 100 discard", backend: .attributes, events: events)
        let console = try fixture.run(vm, timeout: .seconds(600))
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") console: \(console)")
        #expect(console.contains("all vcpus passed"))
        #expect(events.faults.isEmpty, "\(events.faults.count) fault rows")
        #expect(events.conversions.count == 2 * 200)
        #expect(vm.pageStates.sharedBytes == 0)
    }
}
