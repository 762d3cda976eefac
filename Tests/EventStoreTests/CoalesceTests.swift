import SQLite
import Testing

@testable import EventStore

/// The writer's batch: a pending conversion and its finish in one batch become one insert.
struct CoalesceTests {
    func insert(_ id: Int64) -> EventWriter.Write {
        EventWriter.Write(
            .insertConversion,
            values: [
                .integer(id), .integer(1), .integer(0), .integer(100), .null, .integer(0x20_0000), .integer(4096),
                .text("to_shared"),
                .text("explicit"), .text("pending"), .text("default explicit allow"), .text("v1"), .text("emulated"),
                .integer(0),
                .integer(0), .integer(0), .null,
            ])
    }

    func finish(_ id: Int64, decision: String, reason: String?) -> EventWriter.Write {
        EventWriter.Write(
            .finishConversion,
            values: [
                .text(decision), reason.map { .text($0) } ?? .null, .integer(200), .integer(4096), .integer(-1),
                .integer(id),
            ])
    }

    @Test func aFinishMergesIntoItsPendingInsertAndOnlyThere() {
        let fault = EventWriter.Write(sql: "SELECT 1", values: [])
        let out = EventWriter.coalesce([
            insert(1), insert(2), fault, finish(1, decision: "applied", reason: nil),
            finish(3, decision: "failed", reason: "gone"), finish(2, decision: "failed", reason: "EFAULT"),
        ])
        #expect(
            out.map(\.sql) == [
                EventRingCodec.Statement.insertConversion.sql, EventRingCodec.Statement.insertConversion.sql,
                "SELECT 1",
                EventRingCodec.Statement.finishConversion.sql,
            ], "the finish of a row from an earlier batch stays an update")
        #expect(
            out[0].values[9] == .text("applied") && out[0].values[10] == .text("default explicit allow"),
            "no reason keeps the recorded one")
        #expect(
            out[0].values[4] == .integer(200) && out[0].values[14] == .integer(4096)
                && out[0].values[15] == .integer(-1))
        #expect(out[1].values[9] == .text("failed") && out[1].values[10] == .text("EFAULT"))
        #expect(out[3].values.last == .integer(3))
    }

    /// The merged batch leaves the same rows as the statements one by one.
    @Test func theMergedBatchLeavesTheSameRows() throws {
        let batch = [
            insert(1), insert(2), finish(2, decision: "denied", reason: "rule 0"),
            finish(1, decision: "applied", reason: nil),
        ]
        var tables: [[[SQLValue]]] = []
        for writes in [batch, EventWriter.coalesce(batch)] {
            let connection = try SQLiteConnection(path: ":memory:")
            try connection.query(
                """
                CREATE TABLE conversions (event_id INTEGER PRIMARY KEY, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger,
                                          decision, reason, policy_version, source, changed_bytes, discarded_bytes, guest_result, requested_pages)
                """)
            for write in writes { try connection.statement(write.sql).run(write.values) }
            tables.append(try connection.query("SELECT * FROM conversions ORDER BY event_id"))
        }
        #expect(tables[0] == tables[1] && tables[0].count == 2)
    }
}
