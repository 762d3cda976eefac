import Foundation
import MemoryModel

/// Locks on ranges of guest pages: conversions of disjoint ranges proceed side
/// by side, overlapping ones one after the other.
final class PageRangeLocks: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var held: [PageRange] = []

    /// Waits until no held range overlaps `range`, then holds it.
    func lock(_ range: PageRange) {
        condition.lock()
        while held.contains(where: { $0.overlaps(range) }) { condition.wait() }
        held.append(range)
        condition.unlock()
    }

    func unlock(_ range: PageRange) {
        condition.lock()
        if let index = held.firstIndex(of: range) { held.remove(at: index) }
        condition.broadcast()
        condition.unlock()
    }

    func withLock<T>(_ range: PageRange, _ body: () -> T) -> T {
        lock(range)
        defer { unlock(range) }
        return body()
    }
}
