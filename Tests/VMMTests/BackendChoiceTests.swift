import KVM
import TestSupport
import Testing

@testable import VMM

/// What every combination of MEMGATE_KVM_HIDE names does to a host that has everything: which
/// backend VMs get, which private store the alias backend says it uses, what `caps --strongest` hides next.
struct BackendChoiceTests {
    typealias Name = HiddenCapabilities.Name

    /// A host with every capability MemGate uses and VM types default and sw_protected.
    static let everything = FakeKVMAnswers.everything(vmTypes: 0b11)

    static func report(hiding hidden: HiddenCapabilities) -> CapabilityReport {
        CapabilityReport.build(
            hidden: hidden, check: { hidden.answer($0, host: everything[$0] ?? 0) },
            memoryAttributes: { type in
                // Only sw_protected VMs answer PRIVATE; the mask applies on the VM fd too.
                UInt64(
                    hidden.answer(.memoryAttributes, host: type == .swProtected ? Int32(MemoryAttribute.private) : 0))
            })
    }

    /// The host report a probe would make: VMCALL exits reach the agent exactly where the capability says.
    static func hostReport(_ caps: CapabilityReport) -> HostReport {
        let hypercall = HypercallProbeResult(
            outcome: caps.mapGPARangeExitSupported ? .exitsToUserspace : .unavailable, detail: "")
        return HostReport(
            kernel: "test", capabilities: caps, hypercallProbe: hypercall,
            aliasProbe: AliasProbeResult(outcome: .mmioExit, detail: ""))
    }

    /// Every subset of the names, as bit patterns over `Name.allCases`.
    static var allMasks: [HiddenCapabilities] {
        let names = Name.allCases
        return (0..<(1 << names.count)).map { bits in
            HiddenCapabilities(names: Set(names.enumerated().filter { bits & (1 << $0.offset) != 0 }.map(\.element)))
        }
    }

    @Test func everyCombinationChoosesAsSuchAHostWould() throws {
        for hidden in Self.allMasks {
            let caps = Self.report(hiding: hidden)
            let backends = HostReport.backends(for: caps)
            let attributes = try #require(backends.first { $0.name == .attributes })
            let alias = try #require(backends.first { $0.name == .alias })
            let attributesExpected = ![
                Name.guestMemfd, .memoryAttributes, .swProtected, .userMemory2, .memoryFaultInfo,
            ].contains { hidden.hides($0) }
            #expect(attributes.usable == attributesExpected, "hidden \(hidden): \(attributes.reason)")
            #expect(try VirtualMachine.chooseBackend(nil, caps: caps) == (attributesExpected ? .attributes : .alias))
            #expect(alias.usable, "the alias backend runs on every host")
            let guestMemfdStore = !hidden.hides(.guestMemfdMmap)
            #expect(
                alias.reason.hasPrefix(
                    guestMemfdStore ? "private pages in mmap-able guest_memfd" : "private pages in memfd"),
                "hidden \(hidden): \(alias.reason)")
            #expect(caps.mapGPARangeExitSupported == !hidden.hides(.exitHypercall))
            if !hidden.isEmpty {
                #expect(alias.reason.hasSuffix("(MEMGATE_KVM_HIDE=\(hidden))"), "the reason says what is hidden")
            }
        }
    }

    @Test func theStrongestCapabilityIsTheFirstStillPresentAndHidingItMovesOn() {
        for hidden in Self.allMasks {
            let caps = Self.report(hiding: hidden)
            let attributes = HostReport.backends(for: caps).first { $0.name == .attributes }?.usable == true
            let expected: Name? =
                attributes
                ? .memoryAttributes
                : !hidden.hides(.guestMemfd)
                    ? .guestMemfd
                    : !hidden.hides(.exitHypercall)
                        ? .exitHypercall
                        : !hidden.hides(.syncRegs) ? .syncRegs : nil
            let strongest = Self.hostReport(caps).strongestCapability
            #expect(strongest == expected, "hidden \(hidden)")
            if let strongest {
                let next = HiddenCapabilities(names: hidden.names.union([strongest]))
                #expect(
                    Self.hostReport(Self.report(hiding: next)).strongestCapability != strongest,
                    "hiding \(strongest) must change the answer")
            }
        }
    }

    @Test func askingForTheAttributesBackendWhereItIsHiddenNamesWhy() {
        let caps = Self.report(hiding: HiddenCapabilities(names: [.memoryFaultInfo]))
        #expect(throws: VMCreationError.self) { try VirtualMachine.chooseBackend(.attributes, caps: caps) }
        do {
            _ = try VirtualMachine.chooseBackend(.attributes, caps: caps)
        } catch {
            #expect(
                "\(error)".contains("no MEMORY_FAULT_INFO") && "\(error)".contains("MEMGATE_KVM_HIDE=memory_fault_info")
            )
        }
    }
}
