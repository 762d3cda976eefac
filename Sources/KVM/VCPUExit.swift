import CKVM
import Glibc

/// Why `KVM_RUN` returned, decoded from `struct kvm_run`. One case per exit
/// MemGate handles; anything else is `.unsupported`, never a trap.
public enum VCPUExit: Sendable, Equatable {
    /// KVM_EXIT_IO (2): port I/O the guest did.
    case io(IOExit)
    /// KVM_EXIT_MMIO (6): an access to a GPA with no memory slot.
    case mmio(MMIOExit)
    /// KVM_EXIT_HLT (5): HLT with no in-kernel interrupt controller.
    case hlt
    /// KVM_EXIT_SHUTDOWN (8): triple fault.
    case shutdown
    /// KVM_EXIT_HYPERCALL (3): a hypercall enabled by KVM_CAP_EXIT_HYPERCALL.
    case hypercall(HypercallExit)
    /// KVM_EXIT_MEMORY_FAULT (39): reported only with KVM_RUN = -1 and errno EFAULT/EHWPOISON.
    case memoryFault(MemoryFaultExit)
    /// KVM_EXIT_INTERNAL_ERROR (17): KVM could not emulate or deliver something.
    case internalError(suberror: UInt32, data: [UInt64])
    /// KVM_EXIT_FAIL_ENTRY (9): hardware refused VM entry.
    case failEntry(hardwareReason: UInt64, cpu: UInt32)
    /// KVM_EXIT_SYSTEM_EVENT (24): shutdown/reset/crash request.
    case systemEvent(type: UInt32, data: [UInt64])
    /// KVM_RUN returned EINTR: a signal or `immediate_exit` kicked the vCPU out.
    case interrupted
    /// Any exit MemGate does not handle, reported with its number.
    case unsupported(reason: UInt32, detail: String)
}

public struct IOExit: Sendable, Equatable {
    public enum Direction: UInt8, Sendable { case `in` = 0, out = 1 }
    public var direction: Direction
    public var port: UInt16
    /// Bytes per element: 1, 2 or 4.
    public var size: UInt8
    /// Elements (more than one for REP INS/OUTS).
    public var count: UInt32
    /// Where the data lives, relative to the start of kvm_run.
    public var dataOffset: UInt64
    /// For OUT, the first element (little endian, zero-extended); 0 for IN.
    public var value: UInt64

    public init(direction: Direction, port: UInt16, size: UInt8, count: UInt32, dataOffset: UInt64, value: UInt64) {
        self.direction = direction; self.port = port; self.size = size
        self.count = count; self.dataOffset = dataOffset; self.value = value
    }
}

public struct MMIOExit: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt32
    public var isWrite: Bool
    /// For writes, the bytes written (little endian, `length` significant bytes).
    public var data: UInt64

    public init(address: UInt64, length: UInt32, isWrite: Bool, data: UInt64) {
        self.address = address; self.length = length; self.isWrite = isWrite; self.data = data
    }
}

public struct HypercallExit: Sendable, Equatable {
    public var number: UInt64
    public var arg0: UInt64, arg1: UInt64, arg2: UInt64, arg3: UInt64, arg4: UInt64, arg5: UInt64
    public var longMode: Bool

    public init(number: UInt64, arg0: UInt64 = 0, arg1: UInt64 = 0, arg2: UInt64 = 0, arg3: UInt64 = 0,
                arg4: UInt64 = 0, arg5: UInt64 = 0, longMode: Bool = true) {
        self.number = number; self.arg0 = arg0; self.arg1 = arg1; self.arg2 = arg2
        self.arg3 = arg3; self.arg4 = arg4; self.arg5 = arg5; self.longMode = longMode
    }
}

public struct MemoryFaultExit: Sendable, Equatable {
    public static let flagPrivate: UInt64 = 1 << 3
    public var flags: UInt64
    public var gpa: UInt64
    public var size: UInt64
    public var isPrivate: Bool { flags & Self.flagPrivate != 0 }

    public init(flags: UInt64, gpa: UInt64, size: UInt64) {
        self.flags = flags; self.gpa = gpa; self.size = size
    }
}

/// KVM exit reason numbers used by the decoder.
public enum ExitReason {
    public static let unknown: UInt32 = 0
    public static let exception: UInt32 = 1
    public static let io: UInt32 = 2
    public static let hypercall: UInt32 = 3
    public static let debug: UInt32 = 4
    public static let hlt: UInt32 = 5
    public static let mmio: UInt32 = 6
    public static let shutdown: UInt32 = 8
    public static let failEntry: UInt32 = 9
    public static let internalError: UInt32 = 17
    public static let systemEvent: UInt32 = 24
    public static let memoryFault: UInt32 = 39
}

extension VCPUExit {
    /// Decodes fabricated or copied kvm_run bytes (tests, diagnostics).
    public static func decode(kvmRun bytes: [UInt8], ioctlResult: Int32, errno: Int32) throws(KVMError) -> VCPUExit {
        let result: Result<VCPUExit, KVMError> = bytes.withUnsafeBytes { raw in
            // Safety: the decoder bounds every read by raw.count.
            Result { () throws(KVMError) -> VCPUExit in try decode(run: raw, ioctlResult: ioctlResult, errno: errno) }
        }
        return try result.get()
    }

    /// Decodes the kvm_run page after `KVM_RUN` returned `ioctlResult` with `errno`.
    static func decode(run: UnsafeRawBufferPointer, ioctlResult: Int32, errno: Int32) throws(KVMError) -> VCPUExit {
        precondition(run.count >= Int(CKVM_RUN_OFFSET_VALID_REGS), "kvm_run buffer too small")
        // Safety: every offset below is inside the fixed 288-byte head checked above.
        @inline(__always) func u8(_ offset: Int) -> UInt8 { run.load(fromByteOffset: offset, as: UInt8.self) }
        @inline(__always) func u16(_ offset: Int) -> UInt16 { run.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
        @inline(__always) func u32(_ offset: Int) -> UInt32 { run.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        @inline(__always) func u64(_ offset: Int) -> UInt64 { run.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }

        let reason = u32(Int(CKVM_RUN_OFFSET_EXIT_REASON))
        let union = Int(CKVM_RUN_OFFSET_EXIT_UNION)
        if ioctlResult < 0 {
            switch errno {
            case EINTR:
                return .interrupted
            case EFAULT where reason == ExitReason.memoryFault, EHWPOISON where reason == ExitReason.memoryFault:
                return .memoryFault(MemoryFaultExit(flags: u64(union), gpa: u64(union + 8), size: u64(union + 16)))
            default:
                // exit_reason is stale for any other errno: never decode it.
                throw KVMError("KVM_RUN", errno: errno)
            }
        }

        switch reason {
        case ExitReason.io:
            let direction = IOExit.Direction(rawValue: u8(union)) ?? .in
            let size = u8(union + 1)
            let dataOffset = u64(union + 8)
            guard size == 1 || size == 2 || size == 4 else {
                return .unsupported(reason: reason, detail: "I/O exit with access size \(size)")
            }
            guard dataOffset <= UInt64(run.count - Int(size)) else {
                return .unsupported(reason: reason, detail: "I/O data offset \(dataOffset) outside kvm_run")
            }
            var value: UInt64 = 0
            if direction == .out {
                for index in 0..<Int(size) { value |= UInt64(u8(Int(dataOffset) + index)) << (8 * index) }
            }
            return .io(IOExit(direction: direction, port: u16(union + 2), size: size, count: u32(union + 4),
                              dataOffset: dataOffset, value: value))
        case ExitReason.mmio:
            return .mmio(MMIOExit(address: u64(union), length: u32(union + 16), isWrite: u8(union + 20) != 0,
                                  data: u64(union + 8)))
        case ExitReason.hlt:
            return .hlt
        case ExitReason.shutdown:
            return .shutdown
        case ExitReason.hypercall:
            return .hypercall(HypercallExit(number: u64(union), arg0: u64(union + 8), arg1: u64(union + 16),
                                            arg2: u64(union + 24), arg3: u64(union + 32), arg4: u64(union + 40),
                                            arg5: u64(union + 48), longMode: u32(union + 64) != 0))
        case ExitReason.failEntry:
            return .failEntry(hardwareReason: u64(union), cpu: u32(union + 8))
        case ExitReason.internalError:
            let count = min(Int(u32(union + 4)), 16)
            return .internalError(suberror: u32(union), data: (0..<count).map { u64(union + 8 + 8 * $0) })
        case ExitReason.systemEvent:
            let count = min(Int(u32(union + 4)), 16)
            return .systemEvent(type: u32(union), data: (0..<count).map { u64(union + 8 + 8 * $0) })
        case ExitReason.memoryFault:
            // KVM reports memory faults only through a failed KVM_RUN; a 0 return means a broken kernel.
            return .unsupported(reason: reason, detail: "KVM_EXIT_MEMORY_FAULT with KVM_RUN returning 0")
        case ExitReason.unknown:
            return .unsupported(reason: reason, detail: "KVM_EXIT_UNKNOWN, hardware exit reason 0x\(String(u64(union), radix: 16))")
        default:
            return .unsupported(reason: reason, detail: "exit reason \(reason) is not handled by MemGate")
        }
    }
}

extension VCPUExit: CustomStringConvertible {
    public var description: String {
        func hex(_ v: some BinaryInteger) -> String { "0x" + String(v, radix: 16) }
        switch self {
        case .io(let io):
            return "I/O \(io.direction == .out ? "OUT" : "IN") port \(hex(io.port)) size \(io.size) count \(io.count)"
        case .mmio(let m):
            return "MMIO \(m.isWrite ? "write" : "read") of \(m.length) bytes at gpa \(hex(m.address))"
        case .hlt: return "HLT"
        case .shutdown: return "shutdown (triple fault)"
        case .hypercall(let h): return "hypercall \(h.number) (\(hex(h.arg0)), \(hex(h.arg1)), \(hex(h.arg2)))"
        case .memoryFault(let f):
            return "memory fault at gpa \(hex(f.gpa)) size \(f.size) flags \(hex(f.flags))\(f.isPrivate ? " (private)" : "")"
        case .internalError(let sub, let data):
            return "KVM internal error, suberror \(sub), data [\(data.map { hex($0) }.joined(separator: ", "))]"
        case .failEntry(let reason, let cpu): return "VM entry failed, hardware reason \(hex(reason)) on cpu \(cpu)"
        case .systemEvent(let type, _): return "system event \(type)"
        case .interrupted: return "interrupted"
        case .unsupported(let reason, let detail): return "unsupported exit \(reason): \(detail)"
        }
    }
}
