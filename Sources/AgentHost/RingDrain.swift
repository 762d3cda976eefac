import EventStore
import Foundation
import Logging
import MemoryModel
import Platform
import Synchronization

/// The agent's one reader of every VM process's ring: it hands their records to the
/// store's single writer (which gives them event ids in commit order), waits for the
/// commit, and only then moves each ring's read position. The position is also
/// stored with the rows, so an agent that dies between the two resumes after them.
final class RingDrain: Sendable {
    struct Entry {
        let ring: VMRing
        let name: String
        /// The VM process's conversion numbers whose pending rows are committed, by event id.
        var pending: [UInt64: Int64]
        /// Called once the VM's last record (how it ended) is committed.
        let onEnding: @Sendable (VMEnding) -> Void
        /// Called when the ring holds bytes that are not records: it is not read again.
        let onCorrupt: @Sendable () -> Void
        var ended = false
        var corrupt = false
    }

    private let store: EventStore
    private let logger: Logger
    private let entries = Mutex<[Int64: Entry]>([:])
    /// One round at a time: the drain thread's, or a caller's that must see a ring empty.
    private let roundLock = NSLock()
    private let stopping = Atomic<Bool>(false)
    private let stopped = NSCondition()
    private let running = Mutex(false)
    /// Rounds that found records (for the metrics and the benchmarks).
    let rounds = Atomic<UInt64>(0)

    init(store: EventStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func start() {
        running.withLock { $0 = true }
        let thread = Thread { [self] in run() }
        thread.name = "memgate-ring-drain"
        thread.start()
    }

    func add(
        vmID: Int64, ring: VMRing, name: String, pending: [UInt64: Int64] = [:],
        onEnding: @escaping @Sendable (VMEnding) -> Void, onCorrupt: @escaping @Sendable () -> Void
    ) {
        entries.withLock {
            $0[vmID] = Entry(ring: ring, name: name, pending: pending, onEnding: onEnding, onCorrupt: onCorrupt)
        }
    }

    func remove(_ vmID: Int64) { _ = entries.withLock { $0.removeValue(forKey: vmID) } }

    /// Drains `vmID`'s ring until it is empty; true if its last record (the ending) was committed.
    func finish(_ vmID: Int64) -> Bool {
        while true {
            let found = round(only: vmID)
            let entry = entries.withLock { $0[vmID] }
            guard let entry else { return false }
            if entry.ended { return true }
            if found == 0 || entry.corrupt { return false }
        }
    }

    /// Stops the thread after a last round: everything the rings hold now is committed.
    func stop() {
        guard running.withLock({ $0 }) else { return }
        stopping.store(true, ordering: .releasing)
        stopped.lock()
        while running.withLock({ $0 }) { stopped.wait() }
        stopped.unlock()
        _ = round(only: nil)
    }

    /// While records flow, rounds start at least this far apart: each commit then carries a few
    /// milliseconds of every VM's records (one transaction, not one per handful), which is what
    /// keeps recording cheap next to the guests on a small host. Readers see a record this much later.
    static let busyRoundNanos: UInt64 = 4_000_000
    /// How often an idle drain looks (a quiet host costs a few hundred cheap wake-ups a second).
    static let idlePollMicros: UInt32 = 2000

    private func run() {
        while !stopping.load(ordering: .acquiring) {
            let started = MonotonicClock.nanos()
            if round(only: nil) > 0 {
                let spent = MonotonicClock.nanos() &- started
                if spent < Self.busyRoundNanos { usleep(UInt32((Self.busyRoundNanos - spent) / 1000)) }
                continue
            }
            usleep(Self.idlePollMicros)
        }
        running.withLock { $0 = false }
        stopped.lock()
        stopped.broadcast()
        stopped.unlock()
    }

    /// One pass over the rings (or one ring); returns the records committed.
    @discardableResult
    private func round(only: Int64?) -> Int {
        roundLock.lock()
        defer { roundLock.unlock() }
        let snapshot = entries.withLock { entries in only.map { id in entries.filter { $0.key == id } } ?? entries }
        var committed: [(id: Int64, end: UInt64, endings: [VMEnding], pending: [UInt64: Int64])] = []
        var last: UInt64 = 0
        var count = 0
        for (id, entry) in snapshot where !entry.corrupt && !entry.ended {
            guard let raw = entry.ring.pending() else {
                markCorrupt(id)
                continue
            }
            guard let end = raw.last?.end else { continue }
            var decoded: [VMRecord] = []
            decoded.reserveCapacity(raw.count)
            for item in raw {
                guard let record = VMRecord.decode(item.payload, vmID: id, name: entry.name) else { break }
                decoded.append(record)
            }
            guard decoded.count == raw.count else {
                markCorrupt(id)
                continue
            }
            let records = VMRecord.coalesced(decoded)
            var pending = entry.pending
            last = store.ingest(vmID: id, records: records, through: end, pending: &pending)
            count += records.count
            let endings = records.compactMap { if case .ended(let ending) = $0 { ending } else { nil } }
            committed.append((id, end, endings, pending))
        }
        guard !committed.isEmpty else { return 0 }
        if let failure = store.waitCommitted(last) {
            // The store has failed for good; the host fails every VM (EventStore.onFailure). Nothing moves on.
            logger.error("ring records not committed", metadata: ["error": "\(failure)"])
            return 0
        }
        rounds.wrappingAdd(1, ordering: .relaxed)
        for item in committed {
            entries.withLock { entries in
                entries[item.id]?.pending = item.pending
                if !item.endings.isEmpty { entries[item.id]?.ended = true }
            }
            snapshot[item.id]?.ring.markRead(item.end)
            for ending in item.endings { snapshot[item.id]?.onEnding(ending) }
        }
        return count
    }

    private func markCorrupt(_ id: Int64) {
        let entry = entries.withLock { entries -> Entry? in
            entries[id]?.corrupt = true
            return entries[id]
        }
        logger.error("a VM's ring holds bytes that are not records; it is no longer read", metadata: ["vm_id": "\(id)"])
        entry?.onCorrupt()
    }
}
