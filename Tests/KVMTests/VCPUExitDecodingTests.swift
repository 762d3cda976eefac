import Glibc
import Testing

@testable import KVM

/// Decoding of fabricated kvm_run pages: no KVM needed.
@Suite struct VCPUExitDecodingTests {
    /// A zeroed kvm_run page (the size KVM maps on x86 is at least 2352 bytes).
    struct RunPage {
        var bytes = [UInt8](repeating: 0, count: 4096)
        mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            for index in 0..<(T.bitWidth / 8) {
                bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index))
            }
        }
        init(reason: UInt32) { put(reason, at: 8) }
        func decode(result: Int32 = 0, errno: Int32 = 0) throws -> VCPUExit {
            try VCPUExit.decode(kvmRun: bytes, ioctlResult: result, errno: errno)
        }
    }

    @Test func ioOutDecodesPortSizeCountAndValue() throws {
        var page = RunPage(reason: 2)
        page.put(UInt8(1), at: 32)  // direction out
        page.put(UInt8(4), at: 33)  // size
        page.put(UInt16(0xF4), at: 34)  // port
        page.put(UInt32(1), at: 36)  // count
        page.put(UInt64(3000), at: 40)  // data offset
        page.put(UInt32(0x0000_002A), at: 3000)
        let exit = try page.decode()
        #expect(exit == .io(IOExit(direction: .out, port: 0xF4, size: 4, count: 1, dataOffset: 3000, value: 42)))
    }

    @Test func ioInCarriesNoValue() throws {
        var page = RunPage(reason: 2)
        page.put(UInt8(0), at: 32)
        page.put(UInt8(1), at: 33)
        page.put(UInt16(0x3FD), at: 34)
        page.put(UInt32(1), at: 36)
        page.put(UInt64(100), at: 40)
        page.put(UInt8(0xFF), at: 100)
        #expect(
            try page.decode() == .io(IOExit(direction: .in, port: 0x3FD, size: 1, count: 1, dataOffset: 100, value: 0)))
    }

    @Test func ioWithImpossibleSizeOrOffsetIsUnsupported() throws {
        var bad = RunPage(reason: 2)
        bad.put(UInt8(1), at: 32)
        bad.put(UInt8(3), at: 33)
        guard case .unsupported(let reason, let detail) = try bad.decode() else {
            Issue.record("expected unsupported")
            return
        }
        #expect(reason == 2 && detail.contains("size 3"))

        var outside = RunPage(reason: 2)
        outside.put(UInt8(1), at: 32)
        outside.put(UInt8(4), at: 33)
        outside.put(UInt64(4094), at: 40)
        guard case .unsupported(_, let detail2) = try outside.decode() else {
            Issue.record("expected unsupported")
            return
        }
        #expect(detail2.contains("outside kvm_run"))
    }

    @Test func mmioReadAndWrite() throws {
        var page = RunPage(reason: 6)
        page.put(UInt64(0x100_0020_0000), at: 32)
        page.put(UInt64(0x1122_3344), at: 40)
        page.put(UInt32(4), at: 48)
        page.put(UInt8(1), at: 52)
        #expect(
            try page.decode() == .mmio(MMIOExit(address: 0x100_0020_0000, length: 4, isWrite: true, data: 0x1122_3344)))
        page.put(UInt8(0), at: 52)
        #expect(
            try page.decode() == .mmio(MMIOExit(address: 0x100_0020_0000, length: 4, isWrite: false, data: 0x1122_3344))
        )
    }

    @Test func simpleExits() throws {
        #expect(try RunPage(reason: 5).decode() == .hlt)
        #expect(try RunPage(reason: 8).decode() == .shutdown)
    }

    @Test func hypercallArguments() throws {
        var page = RunPage(reason: 3)
        page.put(UInt64(12), at: 32)
        page.put(UInt64(0x20_0000), at: 40)
        page.put(UInt64(1), at: 48)
        page.put(UInt64(0x10), at: 56)
        page.put(UInt32(1), at: 96)
        #expect(
            try page.decode()
                == .hypercall(HypercallExit(number: 12, arg0: 0x20_0000, arg1: 1, arg2: 0x10, longMode: true)))
    }

    @Test(arguments: [EFAULT, EHWPOISON])
    func memoryFaultOnlyWithFaultErrno(errno: Int32) throws {
        var page = RunPage(reason: 39)
        page.put(UInt64(8), at: 32)
        page.put(UInt64(0xC000_0000), at: 40)
        page.put(UInt64(4096), at: 48)
        let exit = try page.decode(result: -1, errno: errno)
        #expect(exit == .memoryFault(MemoryFaultExit(flags: 8, gpa: 0xC000_0000, size: 4096)))
        guard case .memoryFault(let fault) = exit else { return }
        #expect(fault.isPrivate)
    }

    @Test func sharedMemoryFaultHasNoPrivateFlag() throws {
        var page = RunPage(reason: 39)
        page.put(UInt64(0), at: 32)
        page.put(UInt64(0x1000), at: 40)
        page.put(UInt64(4096), at: 48)
        guard case .memoryFault(let fault) = try page.decode(result: -1, errno: EFAULT) else {
            Issue.record("expected memory fault")
            return
        }
        #expect(!fault.isPrivate)
    }

    /// With any errno but EFAULT/EHWPOISON the exit reason is stale and must not be decoded.
    @Test func staleExitReasonIsNeverDecoded() throws {
        var page = RunPage(reason: 39)
        page.put(UInt64(8), at: 32)
        #expect(throws: KVMError("KVM_RUN", errno: ENOMEM)) { try page.decode(result: -1, errno: ENOMEM) }
        // EFAULT with a stale, non-39 reason is a plain KVM_RUN failure, not a memory fault.
        let stale = RunPage(reason: 2)
        #expect(throws: KVMError("KVM_RUN", errno: EFAULT)) { try stale.decode(result: -1, errno: EFAULT) }
        // Reason 39 without a failed KVM_RUN is not a memory fault either.
        guard case .unsupported(39, _) = try page.decode() else {
            Issue.record("expected unsupported")
            return
        }
    }

    @Test func interruptedRegardlessOfReason() throws {
        #expect(try RunPage(reason: 2).decode(result: -1, errno: EINTR) == .interrupted)
    }

    @Test func internalErrorAndSystemEventCapData() throws {
        var page = RunPage(reason: 17)
        page.put(UInt32(1), at: 32)
        page.put(UInt32(40), at: 36)  // claims 40 words; only 16 exist
        page.put(UInt64(0xAB), at: 40)
        guard case .internalError(let sub, let data) = try page.decode() else {
            Issue.record("expected internal error")
            return
        }
        #expect(sub == 1 && data.count == 16 && data[0] == 0xAB)

        var event = RunPage(reason: 24)
        event.put(UInt32(2), at: 32)
        event.put(UInt32(1), at: 36)
        event.put(UInt64(7), at: 40)
        #expect(try event.decode() == .systemEvent(type: 2, data: [7]))
    }

    @Test func failEntryAndUnknownReasons() throws {
        var page = RunPage(reason: 9)
        page.put(UInt64(0x80000021), at: 32)
        page.put(UInt32(3), at: 40)
        #expect(try page.decode() == .failEntry(hardwareReason: 0x80000021, cpu: 3))
        guard case .unsupported(99, let detail) = try RunPage(reason: 99).decode() else {
            Issue.record("expected unsupported")
            return
        }
        #expect(detail.contains("99"))
        guard case .unsupported(0, let unknown) = try RunPage(reason: 0).decode() else {
            Issue.record("expected unsupported")
            return
        }
        #expect(unknown.contains("KVM_EXIT_UNKNOWN"))
    }

    @Test func descriptionsNameTheExit() {
        #expect(VCPUExit.shutdown.description.contains("triple fault"))
        #expect(
            VCPUExit.memoryFault(MemoryFaultExit(flags: 8, gpa: 0x1000, size: 4096)).description.contains("private"))
        #expect(KVMError("KVM_RUN", errno: EFAULT).description.contains("KVM_RUN failed"))
    }
}
