import CLinux
import Glibc

/// A host mapping that backs guest memory: anonymous, or a shared mapping of a
/// memfd / guest_memfd. All access is bounds-checked; offsets are relative to
/// the start of the mapping.
///
/// Guest memory is shared with running vCPUs by nature, so this type is
/// `@unchecked Sendable`: callers coordinate who writes what (as real hardware does).
public final class HostMemory: @unchecked Sendable {
    public let size: Int
    /// Kept only to release the mapping; never handed out.
    private let base: UnsafeMutableRawPointer
    /// Keeps a backing file open as long as it is mapped.
    private let backing: FileDescriptor?

    private init(base: UnsafeMutableRawPointer, size: Int, backing: FileDescriptor?) {
        self.base = base
        self.size = size
        self.backing = backing
    }

    deinit {
        // Safety: base/size are exactly what mmap returned in the initializer.
        munmap(base, size)
    }

    /// Private anonymous memory, reserved lazily (MAP_NORESERVE): untouched pages cost nothing.
    public static func anonymous(size: Int) throws(KVMError) -> HostMemory {
        // Safety: a fresh mapping with no address hint; the result is checked before use.
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw KVMError.last(
                "mmap(anonymous, \(size) bytes)", hint: "lower --memory-mib or raise the process's memory limits")
        }
        return HostMemory(base: pointer, size: size, backing: nil)
    }

    /// A shared mapping of `length` bytes of `file` from `offset`.
    public static func mapShared(_ file: FileDescriptor, offset: Int, length: Int) throws(KVMError) -> HostMemory {
        // Safety: a fresh shared mapping of a file we own; the result is checked before use.
        let pointer = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, file.rawValue, off_t(offset))
        guard let pointer, pointer != MAP_FAILED else {
            throw KVMError.last("mmap(fd \(file.rawValue), \(length) bytes)")
        }
        return HostMemory(base: pointer, size: length, backing: file)
    }

    /// Another shared mapping of the same file range, with its own protections.
    public func mappedAgain() throws(KVMError) -> HostMemory {
        guard let backing else {
            throw KVMError("mmap", errno: EINVAL, hint: "anonymous memory cannot be mapped twice")
        }
        return try Self.mapShared(backing, offset: 0, length: size)
    }

    /// Makes a range readable and writable, or inaccessible (`mprotect`). A vCPU
    /// touching an inaccessible page through a memslot leaves KVM_RUN (MMIO or EFAULT).
    public func protect(at offset: Int, count: Int, accessible: Bool) throws(KVMError) {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw KVMError(
                "mprotect", errno: EINVAL, hint: "range [\(offset), +\(count)) outside mapping of \(size) bytes")
        }
        // Safety: range checked above; changes protections only, never unmaps.
        guard mprotect(base + offset, count, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0 else {
            throw KVMError.last(
                "mprotect(\(accessible ? "PROT_READ|PROT_WRITE" : "PROT_NONE"), \(count) bytes)",
                hint: "the process may have hit vm.max_map_count; fewer page-state runs are needed")
        }
    }

    /// A fresh memfd of `size` bytes, mapped shared.
    public static func memfd(name: String, size: Int) throws(KVMError) -> HostMemory {
        let fd = clinux_memfd_create(name)
        guard fd >= 0 else { throw KVMError.last("memfd_create(\(name))") }
        let file = FileDescriptor(owning: fd)
        guard ftruncate(fd, off_t(size)) == 0 else { throw KVMError.last("ftruncate(memfd, \(size))") }
        return try mapShared(file, offset: 0, length: size)
    }

    /// The host virtual address of `offset`, for KVM memory slots.
    public func hostAddress(at offset: Int = 0) -> UInt64 {
        precondition(offset >= 0 && offset <= size, "offset \(offset) outside mapping of \(size) bytes")
        return UInt64(UInt(bitPattern: base)) + UInt64(offset)
    }

    @inline(__always)
    private func checkRange(_ offset: Int, _ count: Int) {
        precondition(
            offset >= 0 && count >= 0 && offset <= size && count <= size - offset,
            "access [\(offset), +\(count)) outside mapping of \(size) bytes")
    }

    public func write(_ bytes: [UInt8], at offset: Int) {
        checkRange(offset, bytes.count)
        bytes.withUnsafeBytes { source in
            // Safety: destination range checked above; source is the array's own storage.
            (base + offset).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
    }

    public func read(at offset: Int, count: Int) -> [UInt8] {
        checkRange(offset, count)
        // Safety: range checked above; every byte of the new array is initialized by the copy.
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            buffer.baseAddress?.initialize(from: (base + offset).assumingMemoryBound(to: UInt8.self), count: count)
            initialized = count
        }
    }

    public func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        checkRange(offset, MemoryLayout<T>.size)
        // Safety: range checked above; unaligned load of a trivial integer type.
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    public func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        checkRange(offset, MemoryLayout<T>.size)
        // Safety: range checked above; unaligned store of a trivial integer type.
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    public func fill(_ byte: UInt8, at offset: Int, count: Int) {
        checkRange(offset, count)
        // Safety: range checked above.
        memset(base + offset, Int32(byte), count)
    }

    /// True when every byte of the range equals `byte`.
    public func allBytes(equal byte: UInt8, at offset: Int, count: Int) -> Bool {
        checkRange(offset, count)
        // Safety: range checked above; read-only view of mapped bytes.
        let view = UnsafeRawBufferPointer(start: base + offset, count: count)
        return view.allSatisfy { $0 == byte }
    }

    /// Frees the pages of the range (MADV_DONTNEED); anonymous memory reads back as zeroes.
    public func discard(at offset: Int, count: Int) throws(KVMError) {
        checkRange(offset, count)
        // Safety: range checked above and page aligned by callers (madvise checks too).
        guard clinux_madvise_dontneed(base + offset, UInt64(count)) == 0 else {
            throw KVMError.last("madvise(MADV_DONTNEED)")
        }
    }

    /// Frees the backing pages of the range so it reads back as zeroes: punches
    /// the file (MADV_REMOVE) for file mappings, drops anonymous pages otherwise.
    public func discardFile(at offset: Int, count: Int) throws(KVMError) {
        guard backing != nil else { return try discard(at: offset, count: count) }
        checkRange(offset, count)
        // Safety: range checked above; MADV_REMOVE needs a shared file mapping, which this is.
        guard clinux_madvise_remove(base + offset, UInt64(count)) == 0 else {
            throw KVMError.last("madvise(MADV_REMOVE)")
        }
    }
}
