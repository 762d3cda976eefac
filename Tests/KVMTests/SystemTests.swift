import Glibc
import TestSupport
import Testing

@testable import KVM

/// The KVM wrappers against the real /dev/kvm.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct SystemTests {
    @Test func capabilityReportAsksEveryCapability() throws {
        let system = try System()
        let report = system.capabilityReport()
        #expect(report.apiVersion == 12)
        #expect(Set(report.system.keys) == Set(Capability.allCases.map(\.description)))
        #expect(report.vmTypes.contains(.default))
        // MEMORY_ATTRIBUTES is asked on a VM fd of every creatable type.
        #expect(report.memoryAttributesByVMType[VMType.default.description] != nil)
        #expect(report.vcpusMax >= report.vcpusRecommended)
        #expect(report.maxMemslots > 0)
        #expect(report.guestMemfd == (system.check(.guestMemfd) > 0))
        #expect(report.syncRegsMask == UInt32(system.check(.syncRegs)))
    }

    @Test func vmTypeMaskDecoding() {
        #expect(VMType.decode(mask: 0b1) == [.default])
        #expect(VMType.decode(mask: 0b11_0011) == [.default, .swProtected, .snp, .tdx])
        #expect(VMType.snp.supportsPrivateMemory && !VMType.sev.supportsPrivateMemory)
    }

    @Test func registersRoundTrip() throws {
        let vm = try System().createVM()
        let vcpu = try vm.createVCPU(index: 0)
        var regs = try vcpu.registers()
        regs.rax = 0x1234
        regs.rip = 0x10_0000
        regs.r15 = 0xFEED
        try vcpu.setRegisters(regs)
        #expect(try vcpu.registers() == regs)
        var sregs = try vcpu.specialRegisters()
        sregs.cr3 = 0x20000
        try vcpu.setSpecialRegisters(sregs)
        #expect(try vcpu.specialRegisters().cr3 == 0x20000)
    }

    @Test func duplicateVCPUIndexIsAnErrnoError() throws {
        let vm = try System().createVM()
        _ = try vm.createVCPU(index: 0)
        #expect(throws: KVMError("KVM_CREATE_VCPU(0)", errno: EEXIST)) { try vm.createVCPU(index: 0) }
    }

    @Test func memorySlotsRejectUnalignedRegions() throws {
        let vm = try System().createVM()
        let memory = try HostMemory.anonymous(size: 1 << 20)
        try vm.setMemoryRegion(slot: 0, guestPhysicalAddress: 0, size: 1 << 20, memory: memory)
        let error = #expect(throws: KVMError.self) {
            try vm.setMemoryRegion(slot: 1, guestPhysicalAddress: 0x20_0100, size: 4096, memory: memory)
        }
        #expect(error?.errno == EINVAL)
        try vm.deleteMemoryRegion(slot: 0)
    }

    // Needs KVM_CAP_GUEST_MEMFD with GUEST_MEMFD_FLAG_MMAP (the alias backend falls back to memfd without it).
    @Test(
        .enabled(
            if: HostCapabilities.current.mmapGuestMemfd,
            "requires mmap-able guest_memfd (KVM_CAP_GUEST_MEMFD_FLAGS & GUEST_MEMFD_FLAG_MMAP); this host lacks it or MEMGATE_KVM_HIDE hides it"
        ))
    func guestMemfdPunchHoleReadsZeroes() throws {
        let system = try System()
        let vm = try system.createVM()
        let file = try vm.createGuestMemfd(size: 4 * 4096, flags: GuestMemfdFlag.mmap | GuestMemfdFlag.initShared)
        let memory = try file.map()
        memory.fill(0xAB, at: 0, count: 4 * 4096)
        try file.punchHole(offset: 4096, length: 4096)
        #expect(memory.allBytes(equal: 0x00, at: 4096, count: 4096))
        #expect(memory.allBytes(equal: 0xAB, at: 0, count: 4096))
        #expect(memory.allBytes(equal: 0xAB, at: 8192, count: 8192))
        // guest_memfd memory can back a memslot through USER_MEMORY2.
        try vm.setMemoryRegion2(
            slot: 0, guestPhysicalAddress: 0x10_0000, size: 4 * 4096, memory: memory,
            guestMemfd: file, guestMemfdOffset: 0)
    }

    @Test func hostMemoryAccessAndDiscard() throws {
        let memory = try HostMemory.anonymous(size: 8192)
        memory.write([1, 2, 3], at: 4094)
        #expect(memory.read(at: 4094, count: 3) == [1, 2, 3])
        memory.store(UInt64(0x0102_0304_0506_0708), at: 16)
        #expect(memory.load(UInt64.self, at: 16) == 0x0102_0304_0506_0708)
        #expect(memory.read(at: 16, count: 2) == [8, 7])  // little endian
        try memory.discard(at: 4096, count: 4096)
        #expect(memory.allBytes(equal: 0, at: 4096, count: 4096))
        #expect(memory.read(at: 4094, count: 2) == [1, 2])

        let shared = try HostMemory.memfd(name: "memgate-test", size: 4096)
        shared.fill(0x5A, at: 0, count: 4096)
        #expect(shared.allBytes(equal: 0x5A, at: 0, count: 4096))
    }

    @Test func kernelReleaseIsReported() {
        #expect(!System.kernelRelease().isEmpty && System.kernelRelease() != "unknown")
    }
}
