import Glibc
import SQLite

/// A file of the agent's own, allocated to its full size and mapped `MAP_SHARED`
/// read-write for the life of this object. Every access is checked against the
/// mapping's size, so the ring above it only computes offsets.
final class MappedFile: @unchecked Sendable {
    let path: String
    let size: Int
    private let base: UnsafeMutableRawPointer
    private let fd: Int32

    init(path: String, size: Int) throws(EventRingError) {
        self.path = path
        self.size = size
        // Never through a link, never a file that is not the agent's own: refused before anything is written.
        let fd: Int32
        do throws(StoreFileError) {
            fd = try StoreFiles.open(path)
        } catch {
            throw EventRingError(path: path, errno: error.errno, operation: "open (\(error.problem))")
        }
        // Safety: fallocate/mmap of our own file; every result is checked, the fd and mapping are released in deinit.
        // Allocated up front: a page of a mapped file that the filesystem cannot back
        // when first written would kill the agent with SIGBUS (a full disk).
        let allocation = posix_fallocate(fd, 0, off_t(size))
        guard allocation == 0 else {
            close(fd)
            throw EventRingError(path: path, errno: allocation, operation: "posix_fallocate")
        }
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            let code = errno
            close(fd)
            throw EventRingError(path: path, errno: code, operation: "mmap")
        }
        self.fd = fd
        base = pointer
    }

    deinit {
        // Safety: exactly the mapping and descriptor made in init.
        munmap(base, size)
        close(fd)
    }

    private func contains(_ offset: Int, _ count: Int) -> Bool {
        offset >= 0 && count >= 0 && offset <= size - count
    }

    // Safety (the five accessors): each checks its range against the mapping first;
    // outside it, loads read zero and writes do nothing.
    func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        guard contains(offset, MemoryLayout<T>.size) else { return 0 }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        guard contains(offset, MemoryLayout<T>.size) else { return }
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    func write(_ bytes: [UInt8], at offset: Int) {
        guard contains(offset, bytes.count) else { return }
        bytes.withUnsafeBytes { source in
            if let start = source.baseAddress { (base + offset).copyMemory(from: start, byteCount: source.count) }
        }
    }

    func bytes(at offset: Int, count: Int) -> [UInt8] {
        guard contains(offset, count) else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + offset, count: count))
    }

    func zero() {
        memset(base, 0, size)
    }
}
