import APITypes
import Foundation
import SQLite
import Testing

@testable import EventStore

/// The API's readers: the directly rendered JSON pages mean exactly what the typed rows do.
struct QueryTests {
    func populated() throws -> String {
        let path = temporaryDatabase()
        _ = try Maintenance.migrate(path: path)
        let connection = try SQLiteConnection(path: path)
        try connection.execute(
            """
            INSERT INTO vms (vm_id, name, memory_bytes, vcpus, backend, data_ram_start, data_ram_size, initial_state, created_ns)
            VALUES (1, 'q', 1, 1, 'alias', 0, 1, 'private', 1);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)
            INSERT INTO conversions SELECT 2 * i, 1, i % 3, 1000 + i, CASE WHEN i % 7 = 0 THEN NULL ELSE 2000 + i END,
                   4096 * i, 4096, CASE i % 2 WHEN 0 THEN 'to_shared' ELSE 'to_private' END, 'explicit',
                   CASE WHEN i % 5 = 0 THEN 'denied' ELSE 'applied' END, 'rule ' || i || ': "quoted" \\ tab' || char(9) || 'nl' || char(10) || char(1),
                   'v1', 'emulated', 4096, 0, CASE WHEN i % 5 = 0 THEN -1 ELSE 0 END, CASE WHEN i = 3 THEN 9223372036854775807 END, NULL, NULL FROM n;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)
            INSERT INTO memory_faults SELECT 2 * i - 1, 1, 0, 999 + i, 4096 * i, 4096, 8 * (i % 2), 'emulated',
                CASE i % 3 WHEN 0 THEN 'read' WHEN 1 THEN 'write' END, NULL FROM n;
            """)
        return path
    }

    @Test func renderedPagesEqualTheTypedRows() throws {
        let path = try populated()
        defer { removeDatabase(path) }
        let queries = EventQueries(path: path)
        var filter = EventFilter()
        for (after, limit, decision) in [(Int64(0), 100, nil), (200, 100, nil), (0, 1000, "denied"), (480, 100, nil)]
            as [(Int64, Int, String?)]
        {
            filter.after = after
            filter.limit = limit
            filter.decision = decision
            let rows = try queries.conversions(filter)
            let page = try APIJSON.decoder().decode(
                ConversionPage.self, from: Data(try queries.conversionPageJSON(filter).json))
            #expect(page.items == rows)
            #expect(page.nextCursor == (rows.count == limit ? rows.last.map { "\($0.eventId)" } : nil))
            filter.decision = nil
            let faults = try queries.faults(filter)
            let faultPage = try APIJSON.decoder().decode(
                FaultPage.self, from: Data(try queries.faultPageJSON(filter).json))
            #expect(faultPage.items == faults)
        }
        filter.after = 0
        filter.limit = 100
        #expect(try queries.conversions(filter).first?.reason == "rule 1: \"quoted\" \\ tab\tnl\n\u{01}")
        #expect(try queries.conversions(filter).count == 100)
    }

    @Test func eventsStopBeforeThePendingConversion() throws {
        let path = try populated()
        defer { removeDatabase(path) }
        try SQLiteConnection(path: path).execute("UPDATE conversions SET decision = 'pending' WHERE event_id = 20")
        let queries = EventQueries(path: path)
        let events = try queries.events(after: 0, limit: 1000)
        #expect(events.map(\.eventId) == Array(1...19))
        #expect(try queries.events(after: 20, limit: 5).map(\.eventId) == Array(21...25))
        // The page rendered from the rows means exactly what the typed rows do.
        for (after, limit) in [(Int64(0), 1000), (20, 5), (20, 1000), (499, 10), (600, 10)] as [(Int64, Int)] {
            let rows = try queries.events(after: after, limit: limit)
            let page = try APIJSON.decoder().decode(
                EventPage.self, from: Data(try queries.eventPageJSON(after: after, limit: limit)))
            #expect(
                page == EventPage(events: rows, nextAfter: rows.last?.eventId ?? after),
                "after \(after), limit \(limit)")
        }
        // Keys as JSONEncoder writes them (sorted), so a byte-level consumer sees one shape.
        let rendered = String(decoding: try queries.eventPageJSON(after: 20, limit: 2), as: UTF8.self)
        let encoded = String(
            decoding: try APIJSON.encoder().encode(
                EventPage(events: try queries.events(after: 20, limit: 2), nextAfter: 22)), as: UTF8.self)
        #expect(rendered.dropLast() == encoded.replacingOccurrences(of: "\\/", with: "/"), "\(rendered)\n\(encoded)")
    }
}
