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
    private let file: MappedFile
    var path: String { file.path }
    /// The next sequence to hand out (1-based).
    private(set) var nextSequence: UInt64 = 1

    init(databasePath: String, slotSize: Int = 1024, slotCount: Int = 8192) throws(EventRingError) {
        self.slotSize = slotSize
        self.slotCount = slotCount
        file = try MappedFile(path: databasePath + "-ring", size: Self.headerSize + slotSize * slotCount)
        // A ring written with another geometry (or a new file) holds nothing we can read.
        if file.load(UInt64.self, at: 0) != Self.magic || file.load(UInt32.self, at: 8) != UInt32(slotSize)
            || file.load(UInt32.self, at: 12) != UInt32(slotCount)
        {
            reset()
        }
    }

    private func slotOffset(_ sequence: UInt64) -> Int {
        Self.headerSize + Int(sequence % UInt64(slotCount)) * slotSize
    }

    /// The last sequence the database holds.
    var ingested: UInt64 { file.load(UInt64.self, at: 16) }

    /// Copies `record` into the ring; nil when it does not fit a slot or the
    /// slot still holds a record the database does not have yet (the caller then waits for SQLite).
    func append(_ record: [UInt8]) -> UInt64? {
        let sequence = nextSequence
        guard record.count <= slotSize - Self.slotHeader, sequence <= ingested + UInt64(slotCount) else { return nil }
        let offset = slotOffset(sequence)
        file.write(record, at: offset + Self.slotHeader)
        file.store(UInt32(record.count), at: offset + 8)
        file.store(EventRingCodec.checksum(record), at: offset + 12)
        // The sequence last: a record whose sequence is there is whole (or its checksum says otherwise).
        atomicMemoryFence(ordering: .releasing)
        file.store(sequence, at: offset)
        nextSequence += 1
        return sequence
    }

    /// Everything up to `sequence` is committed to SQLite.
    func markIngested(_ sequence: UInt64) {
        if sequence > ingested { file.store(sequence, at: 16) }
    }

    /// Whole records not yet ingested, oldest first.
    func unIngested() -> [[UInt8]] {
        let floor = ingested
        var found: [(UInt64, [UInt8])] = []
        for index in 0..<slotCount {
            let offset = Self.headerSize + index * slotSize
            let sequence = file.load(UInt64.self, at: offset)
            let length = Int(file.load(UInt32.self, at: offset + 8))
            guard sequence > floor, length <= slotSize - Self.slotHeader else { continue }
            let record = file.bytes(at: offset + Self.slotHeader, count: length)
            if EventRingCodec.checksum(record) == file.load(UInt32.self, at: offset + 12) {
                found.append((sequence, record))
            }
        }
        return found.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Empties the ring (after its records are in the database).
    func reset() {
        file.zero()
        file.store(Self.magic, at: 0)
        file.store(UInt32(slotSize), at: 8)
        file.store(UInt32(slotCount), at: 12)
        nextSequence = 1
    }
}
