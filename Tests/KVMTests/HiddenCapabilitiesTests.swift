import Glibc
import TestSupport
import Testing

@testable import KVM

/// MEMGATE_KVM_HIDE: parsing, what each name takes away, and the real KVM layer with a mask.
struct HiddenCapabilitiesTests {
    typealias Name = HiddenCapabilities.Name

    @Test func parsesCommaSeparatedNamesIgnoringSpacesAndEmptyItems() throws {
        #expect(try HiddenCapabilities(parsing: "").isEmpty)
        #expect(try HiddenCapabilities(parsing: " , ,").isEmpty)
        #expect(
            try HiddenCapabilities(parsing: "guest_memfd, sync_regs ,guest_memfd").names == [.guestMemfd, .syncRegs])
        let all = Name.allCases.map(\.rawValue).joined(separator: ",")
        #expect(try HiddenCapabilities(parsing: all).names == Set(Name.allCases))
        #expect(try HiddenCapabilities(parsing: all).description == all, "declaration order, comma-separated")
    }

    @Test(arguments: ["bogus", "GUEST_MEMFD", "guest-memfd", "guest_memfd,nope", "sync_regs;user_memory2"])
    func refusesUnknownNamesNamingTheKnownOnes(_ text: String) {
        #expect(throws: HiddenCapabilitiesError.self) { try HiddenCapabilities(parsing: text) }
        do {
            _ = try HiddenCapabilities(parsing: text)
        } catch {
            #expect(error.description.contains("MEMGATE_KVM_HIDE names unknown capability"))
            #expect(error.description.contains("guest_memfd_mmap") && error.description.contains("exit_hypercall"))
        }
    }

    /// A host that has everything, with VM types default, sw_protected, snp and tdx.
    static let everything = FakeKVMAnswers.everything(vmTypes: 0b11_0011)

    @Test(arguments: Name.allCases)
    func eachNameTakesAwayOnlyWhatItNames(_ name: Name) {
        let hidden = HiddenCapabilities(names: [name])
        for capability in Capability.allCases {
            let host = Self.everything[capability] ?? 0
            let answer = hidden.answer(capability, host: host)
            #expect(answer & ~host == 0, "\(name) added bits to \(capability)")
            let expected: Int32 =
                switch (name, capability) {
                case (.guestMemfd, .guestMemfd), (.guestMemfd, .guestMemfdFlags): 0
                case (.guestMemfdMmap, .guestMemfdFlags): host & ~Int32(GuestMemfdFlag.mmap)
                case (.memoryAttributes, .memoryAttributes), (.memoryFaultInfo, .memoryFaultInfo),
                    (.userMemory2, .userMemory2),
                    (.preFaultMemory, .preFaultMemory), (.exitHypercall, .exitHypercall), (.syncRegs, .syncRegs):
                    0
                case (.swProtected, .vmTypes): host & ~(1 << Int32(VMType.swProtected.rawValue))
                default: host
                }
            #expect(answer == expected, "\(name) on \(capability): \(answer), expected \(expected)")
        }
    }

    @Test func nothingHiddenLeavesEveryAnswerAlone() {
        for capability in Capability.allCases {
            #expect(
                HiddenCapabilities.none.answer(capability, host: Self.everything[capability] ?? 0) == Self.everything[
                    capability] ?? 0)
        }
    }

    @Test func aReportBuiltThroughTheMaskListsWhatIsHidden() {
        let hidden = HiddenCapabilities(names: [.guestMemfdMmap, .swProtected])
        let report = CapabilityReport.build(
            hidden: hidden, check: { hidden.answer($0, host: Self.everything[$0] ?? 0) },
            memoryAttributes: { _ in MemoryAttribute.private })
        #expect(report.hidden == ["guest_memfd_mmap", "sw_protected"])
        #expect(report.guestMemfd && report.guestMemfdFlags == GuestMemfdFlag.initShared)
        #expect(report.vmTypes == [.default, .snp, .tdx])
        #expect(report.memoryAttributesByVMType.keys.sorted() == ["default", "snp", "tdx"])
    }
}

/// The real /dev/kvm with a mask: hidden capabilities read 0 and the calls that need them fail.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct HiddenCapabilitiesHostTests {
    @Test func everyHiddenCapabilityReadsZeroAndTheRestAreUnchanged() throws {
        let plain = try System(hiding: HiddenCapabilities.none).capabilityReport()
        let masked = try System(hiding: HiddenCapabilities(names: Set(HiddenCapabilities.Name.allCases)))
            .capabilityReport()
        #expect(masked.hidden == HiddenCapabilities.Name.allCases.map(\.rawValue))
        #expect(
            !masked.guestMemfd && masked.guestMemfdFlags == 0 && masked.exitHypercallMask == 0
                && masked.syncRegsMask == 0)
        #expect(!masked.userMemory2 && !masked.memoryFaultInfo && masked.system["PRE_FAULT_MEMORY"] == 0)
        #expect(masked.memoryAttributesByVMType.values.allSatisfy { $0 == 0 })
        #expect(!masked.vmTypes.contains(.swProtected))
        #expect(masked.maxMemslots == plain.maxMemslots && masked.vcpusMax == plain.vcpusMax)
        // Only ever less: every raw answer is a subset of the host's.
        for (name, value) in masked.system { #expect(value & ~(plain.system[name] ?? 0) == 0, "\(name)") }
    }

    @Test func callsThatNeedAHiddenCapabilityFailWithEOPNOTSUPP() throws {
        let system = try System(
            hiding: HiddenCapabilities(names: [
                .guestMemfd, .userMemory2, .memoryAttributes, .exitHypercall, .swProtected,
            ]))
        let vm = try system.createVM()
        let refusals: [() throws -> Void] = [
            { _ = try vm.createGuestMemfd(size: 4096) },
            { try vm.setMemoryRegion2(slot: 0, guestPhysicalAddress: 0, size: 0, memory: nil, guestMemfd: nil) },
            { try vm.setMemoryAttributes(guestPhysicalAddress: 0, size: 4096, attributes: 0) },
            { try vm.enable(.exitHypercall, args: [1 << 12]) },
            { _ = try system.createVM(type: .swProtected) },
        ]
        for (index, call) in refusals.enumerated() {
            do {
                try call()
                Issue.record("call \(index) was not refused")
            } catch let error as KVMError {
                #expect(
                    error.errno == EOPNOTSUPP && error.hint?.contains("MEMGATE_KVM_HIDE") == true,
                    "call \(index): \(error)")
            } catch {
                Issue.record("call \(index) threw \(error), not a KVMError")
            }
        }
    }
}
