import APITypes
import Foundation
import MemoryModel
import Synchronization
import Testing

@testable import Controller

/// A scripted fleet: each host answers from a closure; requests are recorded.
final class FakeTransport: Transport, @unchecked Sendable {
    let answer: @Sendable (HostRequest) -> Result<HostResponse, TransportError>
    private let lock = NSLock()
    private var log: [HostRequest] = []

    init(_ answer: @escaping @Sendable (HostRequest) -> Result<HostResponse, TransportError>) { self.answer = answer }

    func perform(_ requests: [HostRequest]) -> [Result<HostResponse, TransportError>] {
        lock.withLock { log += requests }
        return requests.map(answer)
    }

    var requests: [HostRequest] { lock.withLock { log } }
}

func json<T: Encodable>(_ value: T, status: Int = 200, headers: [String: String] = [:]) -> Result<
    HostResponse, TransportError
> {
    .success(
        HostResponse(status: status, headers: headers, body: [UInt8]((try? APIJSON.encoder().encode(value)) ?? Data())))
}

func hosts(_ count: Int) -> [HostEntry] {
    (0..<count).compactMap { try? HostEntry(url: "http://127.0.0.1:\(9000 + $0)", name: "h\($0)") }
}

struct FanOutTests {
    static func conversion(_ id: Int64, at time: UInt64) -> ConversionEvent {
        ConversionEvent(
            eventId: id, vmId: 1, vcpu: 0, requestedNs: time, completedNs: time, gpa: 0, size: 4096,
            direction: "to_shared",
            trigger: "explicit", decision: "applied", reason: "r", policyVersion: "v", source: "emulated",
            changedBytes: 4096, discardedBytes: 0, guestResult: 0)
    }

    @Test func mergesAcrossHostsByTimeAndReportsPartialFailure() {
        let transport = FakeTransport { request in
            switch request.host {
            case 0:
                json(ConversionPage(items: [Self.conversion(1, at: 10), Self.conversion(2, at: 30)], nextCursor: nil))
            case 1: json(ConversionPage(items: [Self.conversion(7, at: 20)], nextCursor: nil))
            case 2: .failure(.unreachable("Couldn't connect to server"))
            default: json(APIErrorBody(code: "unauthorized", message: "bad token"), status: 401)
            }
        }
        let fleet = FleetClient(hosts: hosts(4), transport: transport)
        let outcomes = fleet.get("/v1/conversions", as: ConversionPage.self)
        let merged = Merge.rows(outcomes.map { $0.map(\.items) }, by: \.requestedNs)
        #expect(merged.map(\.host) == ["h0", "h1", "h0"])
        #expect(merged.map(\.row.eventId) == [1, 7, 2])
        #expect(outcomes[2].failure?.kind == "unreachable")
        #expect(outcomes[3].failure == .api(status: 401, code: "unauthorized", message: "bad token"))
        #expect(outcomes[3].failure?.kind == "unauthorized")
        #expect(Merge.exitStatus(outcomes) == 1)
        #expect(Merge.exitStatus(Array(outcomes.prefix(2))) == 0)
    }

    @Test func malformedAnswersAreFailuresNotCrashes() {
        let fleet = FleetClient(
            hosts: hosts(1),
            transport: FakeTransport { _ in .success(HostResponse(status: 200, body: Array("{not json".utf8))) })
        #expect(fleet.get("/v1/vms", as: VMList.self)[0].failure?.kind == "error")
    }
}

struct PolicyPushTests {
    static let document = Array(#"{"defaults":{"implicit":"deny"}}"#.utf8)
    static let version = (try? MemoryModelVersion.of(document)) ?? ""

    /// Hosts: 0 old policy, 1 already new, 2 down, 3 refuses the dry run, 4 changes before the write (412).
    static func fleet(_ transport: FakeTransport) -> FleetClient { FleetClient(hosts: hosts(5), transport: transport) }

    static func transport() -> FakeTransport {
        FakeTransport { request in
            switch (request.host, request.method) {
            case (2, _): return .failure(.unreachable("down"))
            case (1, "POST"):
                return json(PolicyValidation(valid: true, version: version, changed: false, currentVersion: version))
            case (3, "POST"):
                return json(
                    PolicyValidation(
                        valid: false, version: nil, changed: false, currentVersion: "old",
                        field: "rules[0].match.vm", message: "unknown field"))
            case (_, "POST"):
                return json(PolicyValidation(valid: true, version: version, changed: true, currentVersion: "old"))
            case (4, "PUT"): return json(APIErrorBody(code: "precondition_failed", message: "changed"), status: 412)
            case (_, "PUT"):
                #expect(request.headers["If-Match"] == "\"old\"")
                return json(PolicyApplied(version: version, changed: true))
            default: return .failure(.failed("unexpected"))
            }
        }
    }

    @Test func everyHostGetsOneOutcome() {
        let transport = Self.transport()
        let outcomes = PolicyPush(document: Self.document).run(Self.fleet(transport))
        #expect(outcomes.map(\.word) == ["applied", "unchanged", "unreachable", "rejected", "conflict"])
        // Only hosts that passed the dry run were written to.
        #expect(transport.requests.filter { $0.method == "PUT" }.map(\.host) == [0, 4])
    }

    @Test func anInvalidDocumentContactsNobody() {
        let transport = Self.transport()
        let outcomes = PolicyPush(document: Array(#"{"defaults":{"implicit":"maybe"}}"#.utf8)).run(
            Self.fleet(transport))
        #expect(outcomes.allSatisfy { $0.word == "rejected" })
        #expect(transport.requests.isEmpty)
    }

    @Test func maxFailuresStopsBeforeAnyWrite() {
        let transport = Self.transport()
        let outcomes = PolicyPush(document: Self.document, maxFailures: 2).run(Self.fleet(transport))
        #expect(outcomes.map(\.word) == ["skipped", "unchanged", "unreachable", "rejected", "skipped"])
        #expect(!transport.requests.contains { $0.method == "PUT" })
    }

    @Test func expectedVersionTurnsOtherVersionsIntoConflicts() {
        let transport = Self.transport()
        let outcomes = PolicyPush(document: Self.document, expectedVersion: "something-else").run(Self.fleet(transport))
        #expect(outcomes[0].word == "conflict")
        #expect(outcomes[1].word == "unchanged")
    }
}

enum MemoryModelVersion {
    static func of(_ document: [UInt8]) throws -> String { try VersionedPolicy(document: document).version }
}

struct InventoryTests {
    @Test func parsesHostsFiles() throws {
        let hosts = try Inventory.parse(
            """
            # fleet
            http://10.0.0.1:8620 alpha zone=a tier=gold
            https://agent-b:8620/   zone=b
            unix:///run/memgate/agent.sock local

            """)
        #expect(hosts.map(\.name) == ["alpha", "agent-b:8620", "local"])
        #expect(hosts[0].labels == ["zone": "a", "tier": "gold"])
        #expect(Endpoint(hosts[2].url)?.unixSocket == "/run/memgate/agent.sock")
        #expect(try Inventory.select(hosts, where: ["zone=a"]).map(\.name) == ["alpha"])
        #expect(try Inventory.select(hosts, where: ["zone=b", "tier=gold"]).isEmpty)
        for bad in [
            "ftp://x", "http://", "http://user@host:1", "unix://relative", "http://a:1 name extra", "http://a:1 =v",
        ] {
            #expect(throws: InventoryError.self, "\(bad)") { try Inventory.parse(bad) }
        }
        #expect(throws: InventoryError.self) { try Inventory.select(hosts, where: ["zone"]) }
        #expect(throws: InventoryError.self) {
            try Inventory.checkUniqueNames(try Inventory.parse("http://a:1 x\nhttp://b:1 x"))
        }
        #expect(try Inventory.parseList("http://a:1, http://b:2").count == 2)
    }
}

struct OutputTests {
    @Test func memoryBarIsToScale() {
        let memory = VMMemory(
            vmId: 1, bootRegion: MemoryRun(start: 0, end: 0x20_0000, state: "boot"), dataRamStart: 0x20_0000,
            dataRamEnd: 0x100_0000, privateBytes: 0x70_0000, sharedBytes: 0x70_0000,
            runs: [
                MemoryRun(start: 0x20_0000, end: 0x90_0000, state: "private"),
                MemoryRun(start: 0x90_0000, end: 0x100_0000, state: "shared"),
            ])
        let cells = MemoryBar.cells(memory, width: 16)
        #expect(String(cells) == "##=======.......")
        #expect(MemoryBar.render(memory, host: "h", width: 16).contains("private 7.0 MiB (50.0%)"))
        // Zoomed on the boundary: 2 MiB either side of 0x900000, each run listed with its addresses.
        #expect(String(MemoryBar.cells(memory, width: 8, from: 0x70_0000, to: 0xB0_0000)) == "====....")
        let zoomed = MemoryBar.render(memory, host: "h", width: 8, from: 0x70_0000, to: 0xB0_0000)
        #expect(zoomed.contains("4.0 MiB shown of 16.0 MiB of guest RAM, 0x700000 – 0xb00000"), "\(zoomed)")
        #expect(
            zoomed.contains("  0x700000 – 0x900000  private  2.0 MiB")
                && zoomed.contains("  0x900000 – 0xb00000  shared   2.0 MiB"))
        #expect(zoomed.contains("private 2.0 MiB (50.0%)"))
        // Past the end is an empty view, not a trap.
        #expect(MemoryBar.cells(memory, width: 8, from: 1 << 40, to: 1 << 41).isEmpty)
    }

    @Test func tablesDiffsAndTimes() {
        var table = Table(["A", "LONGER"])
        table.add(["xyz", "1"])
        #expect(table.render() == "A    LONGER\nxyz  1")
        #expect(LineDiff.diff(["a", "b", "c"], ["a", "c", "d"]) == ["- b", "+ d"])
        #expect(LineDiff.diff(["x"], ["x"]).isEmpty)
        #expect(utcTime(784_111_777_123_000_000) == "1994-11-06 08:49:37.123")
        #expect(humanBytes(4096) == "4.0 KiB")
        #expect(
            CurlTransport.parseHeaders(
                Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nETag: \"v\"\r\n\r\n".utf8)) == ["etag": "\"v\""])
    }
}

/// The fleet cursor and the hole-free merge, without hosts.
struct FleetCursorTests {
    struct Row {
        var id: Int64
        var time: UInt64
    }

    @Test func theCursorRoundTripsAndRefusesOtherHosts() throws {
        let cursor = FleetCursor(positions: ["a": 12, "b/ü": 0])
        let text = cursor.encoded()
        #expect(text.hasPrefix("mgc1.") && !text.contains("=") && !text.contains("/") && !text.contains("+"))
        #expect(try FleetCursor(parsing: text, hosts: ["b/ü", "a"]) == cursor)
        #expect(throws: FleetCursor.ParseError.otherHosts(cursor: ["a", "b/ü"], asked: ["a"])) {
            try FleetCursor(parsing: text, hosts: ["a"])
        }
        for bad in ["12", "mgc1.", "mgc1.@@", "mgc1." + Data(#"{"a":-1}"#.utf8).base64EncodedString()] {
            #expect(throws: FleetCursor.ParseError.self) { try FleetCursor(parsing: bad, hosts: ["a"]) }
        }
    }

    /// A row later than the last row of a host with more is held back; places move past what was listed.
    @Test func mergeHoldsBackWhatAnotherHostMayPrecede() {
        let a = FleetPage.HostRows(host: "a", rows: [Row(id: 1, time: 10), Row(id: 2, time: 20)], more: true)
        let b = FleetPage.HostRows(host: "b", rows: [Row(id: 7, time: 15), Row(id: 8, time: 30)], more: false)
        let (rows, next) = FleetPage.merge([a, b], from: FleetCursor(positions: [:]), time: \.time, id: \.id)
        #expect(rows.map { "\($0.host)\($0.row.id)" } == ["a1", "b7", "a2"])
        #expect(next == FleetCursor(positions: ["a": 2, "b": 7]))
        // Nothing more anywhere: everything listed, no cursor.
        let done = FleetPage.merge(
            [FleetPage.HostRows(host: "a", rows: [Row(id: 3, time: 40)], more: false)],
            from: FleetCursor(positions: ["a": 2]), time: \.time, id: \.id)
        #expect(done.rows.count == 1 && done.next == nil)
        // A host with nothing new keeps its place.
        let idle = FleetPage.merge(
            [
                FleetPage.HostRows(host: "a", rows: [Row(id: 3, time: 40)], more: true),
                FleetPage.HostRows(host: "b", rows: [Row](), more: false),
            ],
            from: FleetCursor(positions: ["a": 2, "b": 9]), time: \.time, id: \.id)
        #expect(idle.next == FleetCursor(positions: ["a": 3, "b": 9]))
    }
}
