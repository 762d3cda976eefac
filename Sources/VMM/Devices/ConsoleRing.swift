/// The last `capacity` bytes a guest wrote to its console. Pure value type.
public struct ConsoleRing: Sendable {
    public let capacity: Int
    private var storage: [UInt8] = []
    /// Index of the oldest byte once the ring is full.
    private var head = 0
    /// Bytes ever written, including the ones overwritten.
    public private(set) var totalBytes = 0

    /// A capacity below one byte keeps one byte.
    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        storage.reserveCapacity(self.capacity)
    }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        totalBytes += bytes.count
        for byte in bytes.suffix(capacity) {
            if storage.count < capacity {
                storage.append(byte)
            } else {
                storage[head] = byte
                head = (head + 1) % capacity
            }
        }
    }

    /// The retained bytes, oldest first.
    public var contents: [UInt8] { Array(storage[head...] + storage[..<head]) }

    /// The retained bytes from absolute offset `offset` on (offsets count every byte
    /// ever written). Returns where the bytes start and how many asked-for bytes
    /// were already overwritten.
    public func read(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) {
        let oldest = totalBytes - storage.count
        let start = min(max(offset, oldest), totalBytes)
        let all = contents
        return (start, Array(all[(start - oldest)...]), max(oldest - max(offset, 0), 0))
    }

    /// Bytes dropped because the ring was full.
    public var droppedBytes: Int { totalBytes - storage.count }
}
