import KVM
import MemoryModel
import TestSupport
import Testing

@testable import VMM

/// The attributes backend on a host whose KVM has private memory: guest_memfd
/// slots, KVM_SET_MEMORY_ATTRIBUTES, and faults reported by KVM itself.
/// Elsewhere (this project's machines) Swift Testing lists these as skipped, with the reason.
// Needs a VM type with the PRIVATE memory attribute, guest_memfd, USER_MEMORY2 and MEMORY_FAULT_INFO.
@Suite(
    .enabled(
        if: HostCapabilities.current.attributesBackend,
        "attributes backend skipped: this host's KVM has no VM type with the PRIVATE memory attribute, or lacks guest_memfd, USER_MEMORY2 or MEMORY_FAULT_INFO (memgate-agent caps says which; make check-privmem runs these)"
    ))
struct AttributesBackendHostTests {
    @Test(arguments: [false, true])
    func privateMemConversionsOnAttributes(discard: Bool) throws {
        let fixture = try ConversionFixture()
        let harness = SelftestHarness()
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM(
            "conversions", commandLine: discard ? "discard" : "keep", initialState: .shared,
            policy: try fixture.policy(#"{"defaults":{"discard":\#(discard)}}"#),
            backend: .attributes, events: events, harness: harness)
        #expect(vm.backendKind == .attributes)
        let console = try fixture.run(vm)
        #expect(harness.failures == [])
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "") \(console)")
        #expect(events.conversions.allSatisfy { $0.decision == .applied && $0.source == .kvm })
    }

    /// With shared_mask 0 a page has one address: the guest's "private" and "shared"
    /// pointers are the same, so it reads back what it wrote, and every fault comes from KVM.
    @Test func oneAddressPerPageOnAttributes() throws {
        let fixture = try ConversionFixture()
        let events = InMemoryEventSink()
        let vm = try fixture.makeVM("implicit", backend: .attributes, events: events)
        let console = try fixture.run(vm)
        #expect(vm.lifecycle.exitStatus == 0, "\(vm.lifecycle.reason ?? "")")
        #expect(console == "shared=0x11\nprivate=0x22\n")
        #expect(events.faults.allSatisfy { $0.source == .kvm })
    }
}
