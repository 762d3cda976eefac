import APITypes
import MemoryModel
import SQLite

/// `POST /v1/policy/replay`: the recorded requests read once, in id order, through `PolicyReplay`.
extension EventQueries {
    /// Which recorded requests a replay decides again.
    public struct ReplayWindow: Sendable, Equatable {
        /// Nanoseconds since the epoch; requests before it only move page states.
        public var since: UInt64?
        public var until: UInt64?
        public var vm: Int64?
        public init(since: UInt64? = nil, until: UInt64? = nil, vm: Int64? = nil) {
            self.since = since
            self.until = until
            self.vm = vm
        }
    }

    public func replay(_ replay: inout PolicyReplay, window: ReplayWindow) throws(EventStoreError) -> (
        unrecordedDenials: Int, pruned: Bool
    ) {
        try withConnection { connection throws(SQLiteError) in
            // One read transaction: the VMs, their requests and the counts from one snapshot.
            try connection.transaction("BEGIN") { () throws(SQLiteError) -> (Int, Bool) in
                let vmFilter = window.vm.map { [SQLValue.integer($0)] } ?? []
                let vms = try connection.statement(
                    """
                    SELECT vm_id, name, data_ram_start, data_ram_size, initial_state FROM vms\(window.vm == nil ? "" : " WHERE vm_id = ?")
                    """)
                defer { vms.reset() }
                try vms.bind(vmFilter)
                while try vms.step() {
                    replay.add(
                        vm: vms.int64(0),
                        PolicyReplay.VM(
                            name: vms.text(1), dataRAM: PageRange(start: vms.unsigned(2), size: vms.unsigned(3)),
                            initialState: PageState(rawValue: vms.text(4)) ?? .private))
                }
                var clauses: [String] = []
                var values: [SQLValue] = []
                if let vm = window.vm {
                    clauses.append("vm_id = ?")
                    values.append(.integer(vm))
                }
                if let until = window.until {
                    clauses.append("requested_ns < ?")
                    values.append(.unsigned(until))
                }
                let rows = try connection.statement(
                    """
                    SELECT event_id, vm_id, requested_ns, gpa, size, direction, trigger, vcpu, decision, reason FROM conversions
                    \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")) ORDER BY event_id
                    """)
                defer { rows.reset() }
                try rows.bind(values)
                let since = window.since ?? 0
                while try rows.step() {
                    let request = PolicyReplay.Request(
                        eventID: rows.int64(0), vmID: rows.int64(1), requestedNanos: rows.unsigned(2),
                        range: PageRange(start: rows.unsigned(3), size: rows.unsigned(4)),
                        direction: rows.withText(5) {
                            $0.first == UInt8(ascii: "t") && $0.count == 9 ? .toShared : .toPrivate
                        },
                        trigger: rows.withText(6) { $0.first == UInt8(ascii: "e") ? .explicit : .implicit },
                        vcpu: UInt32(truncatingIfNeeded: rows.int64(7)),
                        decision: ConversionDecision(rawValue: rows.text(8)) ?? .invalid, reason: rows.text(9))
                    if request.requestedNanos < since { replay.advance(request) } else { replay.replay(request) }
                }
                var countClauses = ["kind = 'denied'"]
                var countValues: [SQLValue] = []
                if let vm = window.vm {
                    countClauses.append("vm_id = ?")
                    countValues.append(.integer(vm))
                }
                if let sinceValue = window.since {
                    countClauses.append("second >= ?")
                    countValues.append(.unsigned(sinceValue / 1_000_000_000))
                }
                if let until = window.until {
                    countClauses.append("second < ?")
                    countValues.append(.unsigned((until + 999_999_999) / 1_000_000_000))
                }
                let unrecorded =
                    try connection.scalar(
                        "SELECT coalesce(sum(events), 0) FROM event_aggregates WHERE \(countClauses.joined(separator: " AND "))",
                        countValues) ?? 0
                let pruned =
                    (try connection.scalar("SELECT count(*) FROM prunes WHERE cutoff_ns > ?", [.unsigned(since)]) ?? 0)
                    > 0
                return (Int(unrecorded), pruned)
            }
        }
    }
}
