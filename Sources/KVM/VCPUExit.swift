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

extension VCPUExit {
    /// The exit's kind: metrics count exits by it (`memgate_vm_exits_total{reason}`).
    public enum Kind: Int, CaseIterable, Sendable {
        case io, mmio, hlt, shutdown, hypercall, memoryFault, internalError, failEntry, systemEvent, interrupted,
            unsupported

        /// The metric label.
        public var name: String {
            switch self {
            case .io: "io"
            case .mmio: "mmio"
            case .hlt: "hlt"
            case .shutdown: "shutdown"
            case .hypercall: "hypercall"
            case .memoryFault: "memory_fault"
            case .internalError: "internal_error"
            case .failEntry: "fail_entry"
            case .systemEvent: "system_event"
            case .interrupted: "interrupted"
            case .unsupported: "unsupported"
            }
        }
    }

    public var kind: Kind {
        switch self {
        case .io: .io
        case .mmio: .mmio
        case .hlt: .hlt
        case .shutdown: .shutdown
        case .hypercall: .hypercall
        case .memoryFault: .memoryFault
        case .internalError: .internalError
        case .failEntry: .failEntry
        case .systemEvent: .systemEvent
        case .interrupted: .interrupted
        case .unsupported: .unsupported
        }
    }
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
        self.direction = direction
        self.port = port
        self.size = size
        self.count = count
        self.dataOffset = dataOffset
        self.value = value
    }
}

public struct MMIOExit: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt32
    public var isWrite: Bool
    /// For writes, the bytes written (little endian, `length` significant bytes).
    public var data: UInt64
}

public struct HypercallExit: Sendable, Equatable {
    public var number: UInt64
    public var arg0: UInt64, arg1: UInt64, arg2: UInt64, arg3: UInt64, arg4: UInt64, arg5: UInt64
    public var longMode: Bool

    public init(
        number: UInt64, arg0: UInt64 = 0, arg1: UInt64 = 0, arg2: UInt64 = 0, arg3: UInt64 = 0,
        arg4: UInt64 = 0, arg5: UInt64 = 0, longMode: Bool = true
    ) {
        self.number = number
        self.arg0 = arg0
        self.arg1 = arg1
        self.arg2 = arg2
        self.arg3 = arg3
        self.arg4 = arg4
        self.arg5 = arg5
        self.longMode = longMode
    }
}

public struct MemoryFaultExit: Sendable, Equatable {
    /// KVM_MEMORY_EXIT_FLAG_PRIVATE: the access was private.
    public static let flagPrivate = UInt64(CKVM_MEMORY_EXIT_FLAG_PRIVATE)
    public var flags: UInt64
    public var gpa: UInt64
    public var size: UInt64
    public var isPrivate: Bool { flags & Self.flagPrivate != 0 }

    public init(flags: UInt64, gpa: UInt64, size: UInt64) {
        self.flags = flags
        self.gpa = gpa
        self.size = size
    }
}

/// KVM exit reason numbers the decoder tells apart, from the kernel headers (and `ckvm.h`).
public enum ExitReason {
    public static let unknown = UInt32(KVM_EXIT_UNKNOWN)
    public static let exception = UInt32(KVM_EXIT_EXCEPTION)
    public static let io = UInt32(KVM_EXIT_IO)
    public static let hypercall = UInt32(KVM_EXIT_HYPERCALL)
    public static let debug = UInt32(KVM_EXIT_DEBUG)
    public static let hlt = UInt32(KVM_EXIT_HLT)
    public static let mmio = UInt32(KVM_EXIT_MMIO)
    public static let shutdown = UInt32(KVM_EXIT_SHUTDOWN)
    public static let failEntry = UInt32(KVM_EXIT_FAIL_ENTRY)
    public static let internalError = UInt32(KVM_EXIT_INTERNAL_ERROR)
    public static let systemEvent = UInt32(KVM_EXIT_SYSTEM_EVENT)
    public static let memoryFault = UInt32(CKVM_EXIT_MEMORY_FAULT)
}

/// Where each `kvm_run` field lives, from `ckvm.h` (offsetof, pinned there by _Static_assert).
enum RunLayout {
    static let exitReason = Int(CKVM_RUN_EXIT_REASON)
    static let ioDirection = Int(CKVM_RUN_IO_DIRECTION)
    static let ioSize = Int(CKVM_RUN_IO_SIZE)
    static let ioPort = Int(CKVM_RUN_IO_PORT)
    static let ioCount = Int(CKVM_RUN_IO_COUNT)
    static let ioDataOffset = Int(CKVM_RUN_IO_DATA_OFFSET)
    static let mmioAddress = Int(CKVM_RUN_MMIO_PHYS_ADDR)
    static let mmioData = Int(CKVM_RUN_MMIO_DATA)
    static let mmioLength = Int(CKVM_RUN_MMIO_LEN)
    static let mmioIsWrite = Int(CKVM_RUN_MMIO_IS_WRITE)
    static let hypercallNumber = Int(CKVM_RUN_HYPERCALL_NR)
    static let hypercallArgs = Int(CKVM_RUN_HYPERCALL_ARGS)
    static let hypercallResult = Int(CKVM_RUN_HYPERCALL_RET)
    static let hypercallLongMode = Int(CKVM_RUN_HYPERCALL_LONGMODE)
    static let failEntryReason = Int(CKVM_RUN_FAIL_ENTRY_REASON)
    static let failEntryCPU = Int(CKVM_RUN_FAIL_ENTRY_CPU)
    static let internalSuberror = Int(CKVM_RUN_INTERNAL_SUBERROR)
    static let internalCount = Int(CKVM_RUN_INTERNAL_NDATA)
    static let internalData = Int(CKVM_RUN_INTERNAL_DATA)
    static let systemEventType = Int(CKVM_RUN_SYSTEM_EVENT_TYPE)
    static let systemEventCount = Int(CKVM_RUN_SYSTEM_EVENT_NDATA)
    static let systemEventData = Int(CKVM_RUN_SYSTEM_EVENT_DATA)
    static let memoryFaultFlags = Int(CKVM_RUN_MEMORY_FAULT_FLAGS)
    static let memoryFaultGPA = Int(CKVM_RUN_MEMORY_FAULT_GPA)
    static let memoryFaultSize = Int(CKVM_RUN_MEMORY_FAULT_SIZE)
    static let validRegisters = Int(CKVM_RUN_VALID_REGS)
    static let dirtyRegisters = Int(CKVM_RUN_DIRTY_REGS)
    static let syncRegisters = Int(CKVM_RUN_SYNC_REGS)
    static let dataWords = Int(CKVM_RUN_EXIT_DATA_WORDS)
    /// The fixed head every exit is decoded from (everything before the sync registers).
    static let headSize = validRegisters
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
        guard run.count >= RunLayout.headSize else {
            throw KVMError(
                "decode kvm_run", errno: EINVAL,
                hint: "\(run.count) bytes is shorter than kvm_run's \(RunLayout.headSize)-byte head")
        }
        // Safety: every offset below is inside the fixed head checked above.
        @inline(__always) func u8(_ offset: Int) -> UInt8 { run.load(fromByteOffset: offset, as: UInt8.self) }
        @inline(__always) func u16(_ offset: Int) -> UInt16 {
            run.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
        }
        @inline(__always) func u32(_ offset: Int) -> UInt32 {
            run.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        }
        @inline(__always) func u64(_ offset: Int) -> UInt64 {
            run.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        }
        func words(count offset: Int, data: Int) -> [UInt64] {
            (0..<min(Int(u32(offset)), RunLayout.dataWords)).map { u64(data + 8 * $0) }
        }

        let reason = u32(RunLayout.exitReason)
        if ioctlResult < 0 {
            switch errno {
            case EINTR:
                return .interrupted
            case EFAULT where reason == ExitReason.memoryFault, EHWPOISON where reason == ExitReason.memoryFault:
                return .memoryFault(
                    MemoryFaultExit(
                        flags: u64(RunLayout.memoryFaultFlags), gpa: u64(RunLayout.memoryFaultGPA),
                        size: u64(RunLayout.memoryFaultSize)))
            default:
                // exit_reason is stale for any other errno: never decode it.
                throw KVMError("KVM_RUN", errno: errno)
            }
        }

        switch reason {
        case ExitReason.io:
            let direction = IOExit.Direction(rawValue: u8(RunLayout.ioDirection)) ?? .in
            let size = u8(RunLayout.ioSize)
            let dataOffset = u64(RunLayout.ioDataOffset)
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
            return .io(
                IOExit(
                    direction: direction, port: u16(RunLayout.ioPort), size: size, count: u32(RunLayout.ioCount),
                    dataOffset: dataOffset, value: value))
        case ExitReason.mmio:
            return .mmio(
                MMIOExit(
                    address: u64(RunLayout.mmioAddress), length: u32(RunLayout.mmioLength),
                    isWrite: u8(RunLayout.mmioIsWrite) != 0, data: u64(RunLayout.mmioData)))
        case ExitReason.hlt:
            return .hlt
        case ExitReason.shutdown:
            return .shutdown
        case ExitReason.hypercall:
            let args = (0..<6).map { u64(RunLayout.hypercallArgs + 8 * $0) }
            return .hypercall(
                HypercallExit(
                    number: u64(RunLayout.hypercallNumber), arg0: args[0], arg1: args[1], arg2: args[2],
                    arg3: args[3], arg4: args[4], arg5: args[5],
                    longMode: u32(RunLayout.hypercallLongMode) != 0))
        case ExitReason.failEntry:
            return .failEntry(hardwareReason: u64(RunLayout.failEntryReason), cpu: u32(RunLayout.failEntryCPU))
        case ExitReason.internalError:
            return .internalError(
                suberror: u32(RunLayout.internalSuberror),
                data: words(count: RunLayout.internalCount, data: RunLayout.internalData))
        case ExitReason.systemEvent:
            return .systemEvent(
                type: u32(RunLayout.systemEventType),
                data: words(count: RunLayout.systemEventCount, data: RunLayout.systemEventData))
        case ExitReason.memoryFault:
            // KVM reports memory faults only through a failed KVM_RUN; a 0 return means a broken kernel.
            return .unsupported(reason: reason, detail: "KVM_EXIT_MEMORY_FAULT with KVM_RUN returning 0")
        case ExitReason.unknown:
            // The unknown-exit union holds the hardware exit reason where fail_entry holds its own.
            return .unsupported(
                reason: reason,
                detail: "KVM_EXIT_UNKNOWN, hardware exit reason 0x\(String(u64(RunLayout.failEntryReason), radix: 16))")
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
            return
                "memory fault at gpa \(hex(f.gpa)) size \(f.size) flags \(hex(f.flags))\(f.isPrivate ? " (private)" : "")"
        case .internalError(let sub, let data):
            return "KVM internal error, suberror \(sub), data [\(data.map { hex($0) }.joined(separator: ", "))]"
        case .failEntry(let reason, let cpu): return "VM entry failed, hardware reason \(hex(reason)) on cpu \(cpu)"
        case .systemEvent(let type, _): return "system event \(type)"
        case .interrupted: return "interrupted"
        case .unsupported(let reason, let detail): return "unsupported exit \(reason): \(detail)"
        }
    }
}
