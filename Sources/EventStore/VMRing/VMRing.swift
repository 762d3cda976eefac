import Glibc
import SQLite
import Synchronization

/// One VM process's records on their way to the agent's store: a byte ring in a
/// file of the run directory, mapped `MAP_SHARED` by the VM process (the one
/// producer) and by the agent (the one consumer). A record is durable once it is in
/// the ring: the kernel keeps the file's pages whatever happens to either process,
/// so a conversion is answered as soon as its record is here, and an agent that
/// starts later drains what the VM process wrote while no agent ran.
///
/// Layout: a 4 KiB header, then `capacity` bytes of records, each
/// [length u32, checksum u32, payload] padded to 8 bytes, wrapping at the end.
/// Header: magic u64 @0, capacity u64 @8, vm id i64 @16, write position u64 @24
/// (published by the producer after the bytes), read position u64 @32 (moved by
/// the consumer after the records are committed), producer pid @40, waits for room
/// u64 @48, nanoseconds waited u64 @56. Positions only grow; `position % capacity`
/// is where they point. Nothing read from the file is trusted beyond its own bounds.
public final class VMRing: @unchecked Sendable {
    static let magic: UInt64 = 0x3147_4E52_4D56_474D  // "MGVMRNG1"
    public static let headerSize = 4096
    public static let defaultCapacity = 2 << 20
    public static let minimumCapacity = 64 << 10
    public static let maximumCapacity = 1 << 30
    static let recordHeader = 8
    public let capacity: Int
    public let vmID: Int64
    private let file: MappedFile
    public var path: String { file.path }
    /// Serializes producers within the VM process (vCPU threads).
    private let appendLock = Mutex(())

    /// The VM process's side: a new, empty ring (an old file of the same name is reused only if it is ours).
    public static func create(path: String, vmID: Int64, capacity: Int = defaultCapacity) throws(EventRingError)
        -> VMRing
    {
        let ring = try VMRing(path: path, capacity: capacity, vmID: vmID)
        ring.file.zero()
        ring.file.store(UInt64(capacity), at: 8)
        ring.file.store(vmID, at: 16)
        ring.file.store(Int64(getpid()), at: 40)
        ring.file.store(magic, at: 0)
        return ring
    }

    /// The agent's side: a ring a VM process made; refused unless its header says it is that VM's.
    public static func open(path: String, vmID: Int64) throws(EventRingError) -> VMRing {
        var info = stat()
        // Safety: lstat on a path string into a local stat.
        guard lstat(path, &info) == 0 else { throw EventRingError(path: path, errno: errno, operation: "lstat") }
        // The capacity is the file's size: a header that says otherwise is refused below.
        let capacity = Int(info.st_size) - headerSize
        guard info.st_mode & S_IFMT == S_IFREG, capacity >= minimumCapacity, capacity <= maximumCapacity else {
            throw EventRingError(path: path, errno: EINVAL, operation: "open (size \(info.st_size), not a ring)")
        }
        let ring = try VMRing(path: path, capacity: capacity, vmID: vmID)
        guard ring.file.load(UInt64.self, at: 0) == magic, ring.file.load(UInt64.self, at: 8) == UInt64(capacity),
            ring.file.load(Int64.self, at: 16) == vmID
        else {
            throw EventRingError(path: path, errno: EINVAL, operation: "open (header is not VM \(vmID)'s ring)")
        }
        return ring
    }

    private init(path: String, capacity: Int, vmID: Int64) throws(EventRingError) {
        guard capacity >= Self.minimumCapacity, capacity <= Self.maximumCapacity, capacity.nonzeroBitCount == 1 else {
            throw EventRingError(
                path: path, errno: EINVAL, operation: "create (capacity must be a power of two from 64 KiB to 1 GiB)")
        }
        self.capacity = capacity
        self.vmID = vmID
        file = try MappedFile(path: path, size: Self.headerSize + capacity)
    }

    public var writePosition: UInt64 {
        let value = file.load(UInt64.self, at: 24)
        atomicMemoryFence(ordering: .acquiring)
        return value
    }
    public var readPosition: UInt64 {
        let value = file.load(UInt64.self, at: 32)
        atomicMemoryFence(ordering: .acquiring)
        return value
    }
    /// The pid that made the ring (the VM process).
    public var producerPID: Int32 { Int32(truncatingIfNeeded: file.load(Int64.self, at: 40)) }
    /// Times a record waited for room, and for how long in all (the VM's statistics show them).
    public var fullWaits: (count: UInt64, nanos: UInt64) {
        (file.load(UInt64.self, at: 48), file.load(UInt64.self, at: 56))
    }
    /// Bytes written and not yet read.
    public var backlogBytes: UInt64 { writePosition &- readPosition }

    static func padded(_ length: Int) -> Int { (recordHeader + length + 7) & ~7 }

    /// Copies one record in; false when there is no room now (the caller waits and tries again).
    public func tryAppend(_ payload: [UInt8]) -> Bool {
        let needed = Self.padded(payload.count)
        guard needed <= capacity / 2 else { return false }
        return appendLock.withLock { _ in
            let write = file.load(UInt64.self, at: 24)
            guard UInt64(capacity) - (write &- readPosition) >= UInt64(needed) else { return false }
            var header = [UInt8](repeating: 0, count: Self.recordHeader)
            store(UInt32(payload.count), into: &header, at: 0)
            store(EventRingCodec.checksum(payload), into: &header, at: 4)
            copyIn(header, at: write)
            copyIn(payload, at: write &+ UInt64(Self.recordHeader))
            // The position last: a consumer never sees a record before its bytes.
            atomicMemoryFence(ordering: .releasing)
            file.store(write &+ UInt64(needed), at: 24)
            return true
        }
    }

    /// Appends, waiting for room while the consumer is behind or absent; counts each wait.
    /// `shouldGiveUp` is asked between waits (the VM is ending).
    public func append(_ payload: [UInt8], shouldGiveUp: () -> Bool = { false }) -> Bool {
        if tryAppend(payload) { return true }
        guard Self.padded(payload.count) <= capacity / 2 else { return false }
        var started = timespec()
        clock_gettime(CLOCK_MONOTONIC, &started)
        var waited = false
        defer {
            if waited {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let nanos = UInt64(
                    max(0, (now.tv_sec - started.tv_sec) * 1_000_000_000 + (now.tv_nsec - started.tv_nsec)))
                appendLock.withLock { _ in
                    file.store(file.load(UInt64.self, at: 48) &+ 1, at: 48)
                    file.store(file.load(UInt64.self, at: 56) &+ nanos, at: 56)
                }
            }
        }
        while !tryAppend(payload) {
            if shouldGiveUp() { return false }
            waited = true
            usleep(1000)
        }
        return true
    }

    /// The records between the read position and the write position, with the position after each.
    /// nil when the bytes are not records (a corrupt or hostile ring: the caller stops trusting it).
    public func pending(limit: Int = 4096) -> [(payload: [UInt8], end: UInt64)]? {
        var position = readPosition
        let write = writePosition
        guard write &- position <= UInt64(capacity) else { return nil }
        var out: [(payload: [UInt8], end: UInt64)] = []
        while position < write, out.count < limit {
            // Records are 8-byte aligned and the capacity a power of two: a header never straddles the wrap.
            let at = Self.headerSize + Int(position % UInt64(capacity))
            let length = Int(file.load(UInt32.self, at: at))
            let needed = Self.padded(length)
            guard length <= capacity / 2, UInt64(needed) <= write &- position else { return nil }
            let payload = copyOut(at: position &+ UInt64(Self.recordHeader), count: length)
            guard EventRingCodec.checksum(payload) == file.load(UInt32.self, at: at + 4) else { return nil }
            position &+= UInt64(needed)
            out.append((payload, position))
        }
        return out
    }

    /// Everything before `position` is committed to the store.
    public func markRead(_ position: UInt64) {
        guard position > readPosition, position <= writePosition else { return }
        atomicMemoryFence(ordering: .releasing)
        file.store(position, at: 32)
    }

    /// Removes the ring file (once its last record is committed).
    public func unlink() { Glibc.unlink(path) }

    private func copyIn(_ bytes: [UInt8], at position: UInt64) {
        let offset = Int(position % UInt64(capacity))
        let first = min(bytes.count, capacity - offset)
        if first == bytes.count {
            file.write(bytes, at: Self.headerSize + offset)
        } else {
            file.write(Array(bytes[0..<first]), at: Self.headerSize + offset)
            file.write(Array(bytes[first...]), at: Self.headerSize)
        }
    }

    private func copyOut(at position: UInt64, count: Int) -> [UInt8] {
        let offset = Int(position % UInt64(capacity))
        let first = min(count, capacity - offset)
        var out = file.bytes(at: Self.headerSize + offset, count: first)
        if first < count { out += file.bytes(at: Self.headerSize, count: count - first) }
        return out
    }

    private func store(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

}
