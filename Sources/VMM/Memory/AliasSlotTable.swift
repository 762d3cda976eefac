import MemoryModel

/// The alias backend's memslots: one per maximal run of equal page state,
/// at the run's private GPA or at its shared alias. Pure bookkeeping: it plans
/// which slots to delete and create; the caller performs them.
public struct AliasSlotTable: Sendable, Equatable {
    public struct Plan: Sendable, Equatable {
        public var deletes: [Memslot]
        public var creates: [Memslot]
    }

    public let dataRAM: PageRange
    public let sharedMask: UInt64
    public let limit: Int
    /// Data slots keyed by the start GPA of the run they map.
    public private(set) var slots: [UInt64: Memslot] = [:]
    private var freeIDs: [UInt32] = []
    private var nextID: UInt32

    public init(dataRAM: PageRange, sharedMask: UInt64, firstSlot: UInt32, limit: Int) {
        self.dataRAM = dataRAM
        self.sharedMask = sharedMask
        self.nextID = firstSlot
        self.limit = limit
    }

    public var count: Int { slots.count }

    public func memslot(for run: PageStateMap.Run, id: UInt32) -> Memslot {
        let offset = run.range.start - dataRAM.start
        switch run.state {
        case .private:
            return Memslot(slot: id, gpa: run.range.start, size: run.range.size, store: .privateStore, offset: offset)
        case .shared:
            return Memslot(
                slot: id, gpa: run.range.start | sharedMask, size: run.range.size, store: .sharedStore, offset: offset)
        }
    }

    /// True when `run` is mapped exactly as it should be.
    public func isMapped(_ run: PageStateMap.Run) -> Bool {
        guard let slot = slots[run.range.start] else { return false }
        return slot.size == run.range.size && slot.store == (run.state == .private ? .privateStore : .sharedStore)
    }

    /// Plans the change from `before` to `after` (runs overlapping the same window)
    /// and commits it to the table; throws without changing anything over the limit.
    public mutating func plan(before: [PageStateMap.Run], after: [PageStateMap.Run]) throws(BackendError) -> Plan {
        let kept = Set(before.map(\.description)).intersection(after.map(\.description))
        let removed = before.filter { !kept.contains($0.description) }
        let added = after.filter { !kept.contains($0.description) }
        let deletes = removed.compactMap { run in isMapped(run) ? slots[run.range.start] : nil }
        let needed = slots.count - deletes.count + added.count
        guard needed <= limit else { throw .mappingLimit(needed: needed, limit: limit, of: "memslots") }
        for slot in deletes {
            slots[slot.gpa & ~sharedMask] = nil
            freeIDs.append(slot.slot)
        }
        var creates: [Memslot] = []
        for run in added {
            let id: UInt32
            if let reused = freeIDs.popLast() {
                id = reused
            } else {
                id = nextID
                nextID += 1
            }
            let slot = memslot(for: run, id: id)
            slots[run.range.start] = slot
            creates.append(slot)
        }
        return Plan(deletes: deletes, creates: creates)
    }

    /// Forgets the slot mapping `run` (test hook for "backing removed under a running vCPU").
    public mutating func remove(_ run: PageStateMap.Run) -> Memslot? {
        guard let slot = slots.removeValue(forKey: run.range.start) else { return nil }
        freeIDs.append(slot.slot)
        return slot
    }
}
