import CKVM
import Glibc

/// A vCPU fd and its mapped kvm_run page.
///
/// A VCPU is driven by one thread at a time (its vCPU thread); only `kicker`
/// may be used from other threads. Hence `@unchecked Sendable`.
public final class VCPU: @unchecked Sendable {
    public let index: UInt32
    public let fd: FileDescriptor
    public let kicker: VCPUKicker
    private let runPage: UnsafeMutableRawPointer
    private let runSize: Int

    init(index: UInt32, fd: FileDescriptor, runSize: Int) throws(KVMError) {
        // Safety: maps the vCPU's kvm_run area at the size KVM reported; checked before use.
        let mapped = mmap(nil, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        guard let mapped, mapped != MAP_FAILED else { throw KVMError.last("mmap(kvm_run of vcpu \(index))") }
        self.index = index
        self.fd = fd
        self.runPage = mapped
        self.runSize = runSize
        self.kicker = VCPUKicker(run: mapped)
        _ = VCPUKicker.installSignalHandler
    }

    deinit {
        // Safety: exactly the mapping made in init.
        munmap(runPage, runSize)
    }

    /// Enters the guest until the next exit.
    @inline(__always)
    public func run() throws(KVMError) -> VCPUExit {
        let result = ckvm_run(fd.rawValue)
        let savedErrno = result < 0 ? Glibc.errno : 0
        // Safety: the kvm_run mapping is runSize bytes and lives as long as self.
        return try VCPUExit.decode(
            run: UnsafeRawBufferPointer(start: runPage, count: runSize),
            ioctlResult: result, errno: savedErrno)
    }

    /// The bytes an OUT exit wrote (all `count` elements).
    public func outData(of io: IOExit) -> [UInt8] {
        let length = Int(io.size) * Int(io.count)
        guard io.dataOffset <= UInt64(runSize), length <= runSize - Int(io.dataOffset) else { return [] }
        // Safety: the range was checked against the kvm_run mapping above.
        return Array(UnsafeRawBufferPointer(start: runPage + Int(io.dataOffset), count: length))
    }

    /// Supplies the value every element of an IN exit reads.
    public func completeIn(_ io: IOExit, value: UInt64) {
        let size = Int(io.size)
        let length = size * Int(io.count)
        guard io.dataOffset <= UInt64(runSize), length <= runSize - Int(io.dataOffset) else { return }
        for element in 0..<Int(io.count) {
            for byte in 0..<size {
                // Safety: inside the data range checked above.
                runPage.storeBytes(
                    of: UInt8(truncatingIfNeeded: value >> (8 * byte)),
                    toByteOffset: Int(io.dataOffset) + element * size + byte, as: UInt8.self)
            }
        }
    }

    /// Supplies the bytes an MMIO read returns (little endian, `length` bytes used by KVM).
    public func completeMMIORead(value: UInt64) {
        // Safety: mmio.data is 8 bytes inside the fixed kvm_run head.
        runPage.storeBytes(of: value.littleEndian, toByteOffset: RunLayout.mmioData, as: UInt64.self)
    }

    /// Sets `hypercall.ret`, which the guest reads in RAX after re-entry.
    public func completeHypercall(returning value: UInt64) {
        // Safety: hypercall.ret is 8 bytes inside the fixed kvm_run head.
        runPage.storeBytes(of: value, toByteOffset: RunLayout.hypercallResult, as: UInt64.self)
    }

    // MARK: Sync regs (KVM_CAP_SYNC_REGS): registers exchanged through kvm_run, no ioctl per exit.

    /// Asks KVM to copy the general-purpose registers into kvm_run on every exit.
    /// Returns false when the host lacks KVM_CAP_SYNC_REGS for them.
    @discardableResult
    public func enableRegisterSync(hostMask: UInt32) -> Bool {
        guard UInt64(hostMask) & CKVM_SYNC_X86_REGS != 0 else { return false }
        // Safety: kvm_valid_regs is a u64 inside the fixed kvm_run head.
        runPage.storeBytes(of: CKVM_SYNC_X86_REGS, toByteOffset: RunLayout.validRegisters, as: UInt64.self)
        return true
    }

    /// The registers KVM synced at the last exit (after `enableRegisterSync`).
    public var syncedRegisters: Registers {
        // Safety: s.regs is a kvm_regs at a fixed, 8-byte aligned offset inside the mapping.
        Registers(runPage.load(fromByteOffset: RunLayout.syncRegisters, as: kvm_regs.self))
    }

    /// Hands modified registers back to KVM at the next KVM_RUN.
    public func setSyncedRegisters(_ registers: Registers) {
        // Safety: as in syncedRegisters; kvm_dirty_regs is a u64 in the fixed head.
        runPage.storeBytes(of: registers.kvm, toByteOffset: RunLayout.syncRegisters, as: kvm_regs.self)
        let dirty = runPage.load(fromByteOffset: RunLayout.dirtyRegisters, as: UInt64.self)
        runPage.storeBytes(of: dirty | CKVM_SYNC_X86_REGS, toByteOffset: RunLayout.dirtyRegisters, as: UInt64.self)
    }

    public func registers() throws(KVMError) -> Registers {
        Registers(try read("KVM_GET_REGS", kvm_regs(), ckvm_get_regs))
    }

    public func setRegisters(_ registers: Registers) throws(KVMError) {
        try write("KVM_SET_REGS", registers.kvm, ckvm_set_regs)
    }

    public func specialRegisters() throws(KVMError) -> SpecialRegisters {
        SpecialRegisters(try read("KVM_GET_SREGS", kvm_sregs(), ckvm_get_sregs))
    }

    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(KVMError) {
        try write("KVM_SET_SREGS", registers.raw, ckvm_set_sregs)
    }

    /// One register-block read: the ioctl fills `initial`'s storage.
    private func read<Block>(
        _ ioctl: String, _ initial: Block,
        _ call: (Int32, UnsafeMutablePointer<Block>) -> Int32
    ) throws(KVMError) -> Block {
        var block = initial
        // Safety: `block` is a live, correctly typed kvm_* struct for the ioctl's duration.
        guard call(fd.rawValue, &block) == 0 else { throw KVMError.last("\(ioctl)(vcpu \(index))") }
        return block
    }

    private func write<Block>(
        _ ioctl: String, _ block: Block,
        _ call: (Int32, UnsafePointer<Block>) -> Int32
    ) throws(KVMError) {
        var block = block
        // Safety: as in read; the kernel only reads the struct.
        guard call(fd.rawValue, &block) == 0 else { throw KVMError.last("\(ioctl)(vcpu \(index))") }
    }

    public func setCPUID(_ table: CPUIDTable) throws(KVMError) {
        let result = table.withKVMCPUID2 { ckvm_set_cpuid2(fd.rawValue, $0) }
        guard result == 0 else { throw KVMError.last("KVM_SET_CPUID2(vcpu \(index))") }
    }
}
