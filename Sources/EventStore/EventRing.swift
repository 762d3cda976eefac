import Glibc
import SQLite
import Synchronization

/// Why the event ring next to a database could not be used.
public struct EventRingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let errno: Int32
    public let operation: String
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Event records made durable against the agent dying without a syscall or a
/// wait: each is copied into a file mapped `MAP_SHARED` (`<db>-ring`, 0600),
/// whose pages the kernel keeps and writes back whatever happens to this
/// process. The writer thread commits the same records to SQLite in batches and
/// then marks them ingested; when an agent opens the database it first applies
/// whatever a dead agent left un-ingested. (Power loss is `Durability.full`'s
/// business: with it the ring is not used and vCPUs wait for SQLite.)
///
/// Layout: a 4 KiB header (magic, slot size, slot count, ingested sequence),
/// then fixed slots of [sequence u64, length u32, checksum u32, record]. A
/// slot's sequence is written last, so a record a crash cut short never counts.
/// Callers serialize `append` and `markIngested` (the writer's queue lock).
final class EventRing: @unchecked Sendable {
    static let magic: UInt64 = 0x3147_4E49_5247_4D  // "MGRING1"
    static let headerSize = 4096
    static let slotHeader = 16
    let slotSize: Int
    let slotCount: Int
    let path: String
    private let base: UnsafeMutableRawPointer
    private let mappedSize: Int
    private let fd: Int32
    /// The next sequence to hand out (1-based).
    private(set) var nextSequence: UInt64 = 1

    init(databasePath: String, slotSize: Int = 1024, slotCount: Int = 8192) throws(EventRingError) {
        path = databasePath + "-ring"
        self.slotSize = slotSize
        self.slotCount = slotCount
        mappedSize = Self.headerSize + slotSize * slotCount
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
        let allocation = posix_fallocate(fd, 0, off_t(mappedSize))
        guard allocation == 0 else {
            close(fd)
            throw EventRingError(path: path, errno: allocation, operation: "posix_fallocate")
        }
        let pointer = mmap(nil, mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            let code = errno
            close(fd)
            throw EventRingError(path: path, errno: code, operation: "mmap")
        }
        self.fd = fd
        base = pointer
        // A ring written with another geometry (or a new file) holds nothing we can read.
        if load(UInt64.self, at: 0) != Self.magic || load(UInt32.self, at: 8) != UInt32(slotSize)
            || load(UInt32.self, at: 12) != UInt32(slotCount) {
            reset()
        }
    }

    deinit {
        // Safety: exactly the mapping and descriptor made in init.
        munmap(base, mappedSize)
        close(fd)
    }

    // Safety (all four): offsets are computed from the header size and slot geometry fixed in init, inside the mapping.
    private func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    private func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    private func slotOffset(_ sequence: UInt64) -> Int {
        Self.headerSize + Int(sequence % UInt64(slotCount)) * slotSize
    }

    /// The last sequence the database holds.
    var ingested: UInt64 { load(UInt64.self, at: 16) }

    /// Copies `record` into the ring; nil when it does not fit a slot or the
    /// slot still holds a record the database does not have yet (the caller then waits for SQLite).
    func append(_ record: [UInt8]) -> UInt64? {
        let sequence = nextSequence
        guard record.count <= slotSize - Self.slotHeader, sequence <= ingested + UInt64(slotCount) else { return nil }
        let offset = slotOffset(sequence)
        record.withUnsafeBytes { bytes in
            // Safety: the slot has room for the record (checked above); the source is the array's storage.
            if let source = bytes.baseAddress { (base + offset + Self.slotHeader).copyMemory(from: source, byteCount: bytes.count) }
        }
        store(UInt32(record.count), at: offset + 8)
        store(EventRingCodec.checksum(record), at: offset + 12)
        // The sequence last: a record whose sequence is there is whole (or its checksum says otherwise).
        atomicMemoryFence(ordering: .releasing)
        store(sequence, at: offset)
        nextSequence += 1
        return sequence
    }

    /// Everything up to `sequence` is committed to SQLite.
    func markIngested(_ sequence: UInt64) {
        if sequence > ingested { store(sequence, at: 16) }
    }

    /// Whole records not yet ingested, oldest first.
    func unIngested() -> [[UInt8]] {
        let floor = ingested
        var found: [(UInt64, [UInt8])] = []
        for index in 0..<slotCount {
            let offset = Self.headerSize + index * slotSize
            let sequence = load(UInt64.self, at: offset)
            let length = Int(load(UInt32.self, at: offset + 8))
            guard sequence > floor, length <= slotSize - Self.slotHeader else { continue }
            // Safety: length checked against the slot size above.
            let record = Array(UnsafeRawBufferPointer(start: base + offset + Self.slotHeader, count: length))
            if EventRingCodec.checksum(record) == load(UInt32.self, at: offset + 12) { found.append((sequence, record)) }
        }
        return found.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Empties the ring (after its records are in the database).
    func reset() {
        // Safety: the whole mapping, which is ours.
        memset(base, 0, mappedSize)
        store(Self.magic, at: 0)
        store(UInt32(slotSize), at: 8)
        store(UInt32(slotCount), at: 12)
        nextSequence = 1
    }
}
