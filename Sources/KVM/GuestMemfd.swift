import CLinux

/// A guest_memfd: private guest memory owned by KVM.
public final class GuestMemfd: Sendable {
    public let fd: FileDescriptor
    public let size: UInt64
    public let flags: UInt64

    init(fd: FileDescriptor, size: UInt64, flags: UInt64) {
        self.fd = fd
        self.size = size
        self.flags = flags
    }

    /// Maps the whole file (needs `GuestMemfdFlag.mmap`).
    public func map() throws(KVMError) -> HostMemory {
        try HostMemory.mapShared(fd, offset: 0, length: Int(size))
    }

    /// Frees a range: later reads of it see zeroes (`fallocate(PUNCH_HOLE|KEEP_SIZE)`).
    public func punchHole(offset: UInt64, length: UInt64) throws(KVMError) {
        guard clinux_punch_hole(fd.rawValue, Int64(offset), Int64(length)) == 0 else {
            throw KVMError.last("fallocate(guest_memfd, PUNCH_HOLE, 0x\(String(offset, radix: 16)), \(length))")
        }
    }

    /// Allocates a range (`fallocate(KEEP_SIZE)`), as a VMM does when a range goes private.
    public func allocate(offset: UInt64, length: UInt64) throws(KVMError) {
        guard clinux_allocate(fd.rawValue, Int64(offset), Int64(length)) == 0 else {
            throw KVMError.last("fallocate(guest_memfd, 0x\(String(offset, radix: 16)), \(length))")
        }
    }
}
