import MemoryModel
import SQLite

/// A VM's memory at a past moment: the newest checkpoint of its page-state map at or
/// before the moment, then the applied conversions after it (at most a checkpoint's worth,
/// found through the (vm_id, requested_ns) index), in event id order.
public enum MemoryHistory {
    /// A moment: after event `id`, or the state once every conversion requested at or before `time` was applied.
    public enum Moment: Sendable, Equatable {
        case event(Int64)
        case time(UInt64)
    }

    public struct PastState: Sendable, Equatable {
        public var map: PageStateMap
        /// The last applied conversion in the state (nil: none; the VM's initial state).
        public var throughEventID: Int64?
        /// Conversions replayed on top of the checkpoint (nil: none was used).
        public var replayed: Int
        public var checkpointEventID: Int64?
    }

    public enum Unavailable: Error, Sendable, Equatable {
        /// No such VM in the store.
        case noVM
        /// The records that state depends on were pruned (before `throughEventID`).
        case pruned(throughEventID: Int64)
    }

    /// How far a conversion's requested time may run ahead of one with a higher event id (vCPUs
    /// record in parallel): the time bounds of the replay are widened by this much.
    static let clockSlack: UInt64 = 100_000_000

    public static func state(vm id: Int64, at moment: Moment, _ connection: SQLiteConnection) throws(SQLiteError)
        -> Result<PastState, Unavailable>
    {
        guard
            let vm = try connection.query(
                """
                SELECT data_ram_start, data_ram_size, initial_state, pruned_to_shared_bytes + pruned_to_private_bytes FROM vms WHERE vm_id = ?
                """, [.integer(id)]
            ).first
        else { return .failure(.noVM) }
        let start = vm[0].unsigned
        let bounds = PageRange(start: start, end: start &+ vm[1].unsigned)
        let initial = PageState(rawValue: vm[2].text) ?? .private
        let checkpoint: [SQLValue]?
        switch moment {
        case .event(let event):
            checkpoint = try connection.query(
                """
                SELECT event_id, time_ns, runs FROM memory_checkpoints WHERE vm_id = ? AND event_id <= ? ORDER BY event_id DESC LIMIT 1
                """, [.integer(id), .integer(event)]
            ).first
        case .time(let time):
            checkpoint = try connection.query(
                """
                SELECT event_id, time_ns, runs FROM memory_checkpoints WHERE vm_id = ? AND time_ns <= ? ORDER BY event_id DESC LIMIT 1
                """, [.integer(id), .unsigned(time)]
            ).first
        }
        var map = PageStateMap(bounds: bounds, initial: initial)
        var afterEvent: Int64 = 0
        var afterTime: UInt64 = 0
        if let checkpoint, let runs = CheckpointRuns.decode(checkpoint[2].text) {
            map = PageStateMap(bounds: bounds, initial: initial, runs: runs)
            afterEvent = checkpoint[0].integer
            afterTime = checkpoint[1].unsigned
        }
        // Conversions this VM lost to a prune, and not covered by a checkpoint: that state cannot be told exactly.
        let genesis = try ChainLinker.genesis(.events, connection)?.throughID ?? 0
        if vm[3].integer > 0, afterEvent < genesis { return .failure(.pruned(throughEventID: genesis)) }
        let (throughEvent, untilTime): (Int64, UInt64)
        switch moment {
        case .event(let event):
            // The newest conversion at or before the event (of any VM) bounds the time of this VM's.
            let newest =
                try connection.query(
                    "SELECT requested_ns FROM conversions WHERE event_id <= ? ORDER BY event_id DESC LIMIT 1",
                    [.integer(event)]
                ).first?.first?.unsigned ?? 0
            (throughEvent, untilTime) = (event, newest &+ clockSlack < newest ? UInt64.max : newest &+ clockSlack)
        case .time(let time):
            (throughEvent, untilTime) = (Int64.max, time)
        }
        var replayed = 0
        var through: Int64? = afterEvent > 0 ? afterEvent : nil
        let statement = try connection.statement(
            """
            SELECT event_id, gpa, size, direction, requested_ns FROM conversions
            WHERE vm_id = ?1 AND requested_ns >= ?2 AND requested_ns <= ?3 AND event_id > ?4 AND event_id <= ?5 AND decision = 'applied'
            ORDER BY event_id
            """)
        defer { statement.reset() }
        try statement.bind([
            .integer(id), .unsigned(afterTime > clockSlack ? afterTime - clockSlack : 0), .unsigned(untilTime),
            .integer(afterEvent), .integer(throughEvent),
        ])
        while try statement.step() {
            if case .time(let time) = moment, statement.unsigned(4) > time { continue }
            let gpa = statement.unsigned(1)
            let (end, overflow) = gpa.addingReportingOverflow(statement.unsigned(2))
            guard !overflow else { continue }
            // direction is to_shared or to_private: the fourth byte tells them apart without a String.
            let toShared = statement.withText(3) { $0.count > 3 && $0[3] == UInt8(ascii: "s") }
            map.set(PageRange(start: gpa, end: end), to: toShared ? .shared : .private)
            replayed += 1
            through = statement.int64(0)
        }
        return .success(
            PastState(
                map: map, throughEventID: through, replayed: replayed,
                checkpointEventID: afterEvent > 0 ? afterEvent : nil))
    }
}

/// A checkpoint's runs as text: `start-end:p` or `:s` in hex, comma separated. Pure.
enum CheckpointRuns {
    static func encode(_ map: PageStateMap) -> String {
        map.runs.map {
            "\(String($0.range.start, radix: 16))-\(String($0.range.end, radix: 16)):\($0.state == .private ? "p" : "s")"
        }
        .joined(separator: ",")
    }

    /// nil when the text is not runs (a row someone edited): the checkpoint is then not used. Reads the bytes
    /// directly: a checkpoint of a fragmented map holds thousands of runs, and each query reads one.
    static func decode(_ text: String) -> [(start: UInt64, end: UInt64, state: PageState)]? {
        var runs: [(start: UInt64, end: UInt64, state: PageState)] = []
        var utf8 = text.utf8.makeIterator()
        var byte = utf8.next()
        /// Hex digits up to `terminator` (consumed); nil if there are none, too many, or another byte comes first.
        func number(until terminator: UInt8) -> UInt64? {
            var value: UInt64 = 0
            var digits = 0
            while let current = byte, current != terminator {
                let nibble: UInt64
                switch current {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = UInt64(current - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = UInt64(current - UInt8(ascii: "a") + 10)
                default: return nil
                }
                guard digits < 16 else { return nil }
                value = value << 4 | nibble
                digits += 1
                byte = utf8.next()
            }
            guard digits > 0, byte == terminator else { return nil }
            byte = utf8.next()
            return value
        }
        while byte != nil {
            guard let start = number(until: UInt8(ascii: "-")), let end = number(until: UInt8(ascii: ":")), start < end
            else { return nil }
            let state: PageState
            switch byte {
            case UInt8(ascii: "p"): state = .private
            case UInt8(ascii: "s"): state = .shared
            default: return nil
            }
            byte = utf8.next()
            runs.append((start, end, state))
            if byte == UInt8(ascii: ",") {
                byte = utf8.next()
                guard byte != nil else { return nil }
            } else if byte != nil {
                return nil
            }
        }
        return runs
    }
}

/// Writes a checkpoint of each VM's page-state map every `every` applied conversions, following the
/// rows the chain links (final, in id order) inside the writer's transaction.
struct CheckpointKeeper {
    static let every = 4096

    private struct Tracked {
        var map: PageStateMap
        var sinceCheckpoint: Int
    }

    private var vms: [Int64: Tracked] = [:]

    mutating func observe(_ row: AuditChain.Row, _ connection: SQLiteConnection) throws(SQLiteError) {
        guard let change = row.applied else { return }
        var tracked: Tracked
        if let known = vms[change.vmID] {
            tracked = known
        } else {
            // First seen by this writer: the state just before this row, from the store.
            guard case .success(let past) = try MemoryHistory.state(vm: change.vmID, at: .event(row.id - 1), connection)
            else { return }
            tracked = Tracked(map: past.map, sinceCheckpoint: past.replayed)
        }
        tracked.map.set(PageRange(start: change.start, end: change.end), to: change.state)
        tracked.sinceCheckpoint += 1
        if tracked.sinceCheckpoint >= Self.every {
            try connection.query(
                "INSERT OR REPLACE INTO memory_checkpoints (vm_id, event_id, time_ns, runs) VALUES (?, ?, ?, ?)",
                [
                    .integer(change.vmID), .integer(row.id), .unsigned(row.timeNanos),
                    .text(CheckpointRuns.encode(tracked.map)),
                ])
            tracked.sinceCheckpoint = 0
        }
        vms[change.vmID] = tracked
    }

    /// A rolled-back batch: what was followed may be ahead of the store; start again from it.
    mutating func forget() { vms = [:] }
}

extension EventQueries {
    /// A VM's memory at a past moment, from the store (the VM may have ended, or its agent restarted).
    public func pastMemory(vm id: Int64, at moment: MemoryHistory.Moment) throws(EventStoreError) -> Result<
        MemoryHistory.PastState, MemoryHistory.Unavailable
    > {
        try withConnection { connection throws(SQLiteError) in
            // One read transaction: the checkpoint and the conversions after it from one snapshot.
            try connection.transaction("BEGIN") { () throws(SQLiteError) in
                try MemoryHistory.state(vm: id, at: moment, connection)
            }
        }
    }
}
