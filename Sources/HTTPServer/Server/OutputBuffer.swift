/// Bytes a connection has not handed to its socket yet. Pure.
///
/// Appended at the end and taken from the front without moving what is left: a
/// slow reader's megabytes are not shifted down after every partial write. The
/// front is reclaimed when it outgrows what is left, so the storage stays at most
/// about twice the unsent bytes. Appending to an empty buffer keeps the caller's
/// array (no copy).
struct OutputBuffer {
    private var storage: [UInt8] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }

    mutating func append(_ bytes: [UInt8]) {
        if isEmpty {
            storage = bytes
            start = 0
        } else {
            storage += bytes
        }
    }

    /// Keeps the part of `bytes` from `offset` on (what a partial write left).
    mutating func append(_ bytes: [UInt8], from offset: Int) {
        guard offset < bytes.count else { return }
        if offset <= 0 { return append(bytes) }
        if isEmpty {
            storage = Array(bytes[offset...])
            start = 0
        } else {
            storage += bytes[offset...]
        }
    }

    /// Drops the first `n` unsent bytes (what the socket took).
    mutating func consume(_ n: Int) {
        start += min(max(n, 0), count)
        if start == storage.count {
            storage = []
            start = 0
        } else if start >= 64 << 10 && start >= storage.count - start {
            storage.removeFirst(start)
            start = 0
        }
    }

    /// The unsent bytes, for one write call.
    func withUnsentBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        // Safety: the pointer is used only inside `body`, while `storage` is alive and unchanged.
        storage.withUnsafeBytes { all in body(UnsafeRawBufferPointer(rebasing: all[start...])) }
    }
}
