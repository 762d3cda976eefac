import APITypes
import Foundation
import HTTPServer
import Logging
import MemoryModel
import TestSupport
import Testing

/// An "agent" that breaks API v1's promises: it repeats the same page, hands out
/// ids without end, and names its VMs with terminal escape sequences.
final class HostileAgent: HTTPHandler {
    enum Mode {
        case repeatsPages, endlessIDs, hugeBody, longHeaderLine, manyHeaders, endlessEvent, emptyDataLines,
            slowPolicyDocuments
    }
    let mode: Mode
    static let evilName = "evil\u{1B}[2J\u{1B}[1;1H\u{9B}31m\u{202E}"

    init(_ mode: Mode) { self.mode = mode }

    func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse? { nil }

    func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        let path = String(request.path)
        switch mode {
        case .hugeBody:
            return HTTPResponse(
                status: 200, contentType: "application/json", body: [UInt8](repeating: 0x20, count: 65 << 20))
        case .longHeaderLine:
            return HTTPResponse(
                status: 200, contentType: "application/json", body: Array("{}".utf8),
                headers: [("X-Long", String(repeating: "a", count: 200 << 10))])
        case .manyHeaders:
            return HTTPResponse(
                status: 200, contentType: "application/json", body: Array("{}".utf8),
                headers: (0..<400).map { ("X-H\($0)", String(repeating: "a", count: 1000)) })
        case .endlessEvent:
            // One honest event, then one whose data never ends (2 MiB and no line end).
            let stream =
                Array("id: 1\ndata: {\"n\":1}\n\ndata: ".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 2 << 20)
            return HTTPResponse(status: 200, contentType: "text/event-stream", body: stream)
        case .emptyDataLines:
            // One honest event, then 2 Mi empty data lines with no blank line to end the event.
            var stream = Array("id: 1\ndata: {\"n\":1}\n\n".utf8)
            for _ in 0..<(2 << 20) { stream += Array("data:\n".utf8) }
            return HTTPResponse(status: 200, contentType: "text/event-stream", body: stream)
        case .slowPolicyDocuments:
            // An empty host whose policy history names 1000 documents, each answered after 2 s.
            switch path {
            case "/v1/vms": return Self.json(VMList(vms: []))
            case "/v1/events": return Self.json(EventPage(events: [], nextAfter: 0))
            // An agent from before the audit chain: its rows are pulled unverified.
            case "/v1/audit/head":
                return HTTPResponse(
                    status: 404, contentType: "application/json",
                    body: Array(#"{"error":{"code":"not_found","message":"no"}}"#.utf8))
            case "/v1/policy/history":
                return Self.json(
                    PolicyHistory(
                        entries: (1...1000).map {
                            PolicyHistoryEntry(
                                id: Int64($0), version: SHA256.hex(Self.document($0)), appliedNs: 1, appliedBy: "x")
                        }))
            default:
                if path.hasPrefix("/v1/policy/documents/"),
                    let n = (1...1000).first(where: {
                        SHA256.hex(Self.document($0)) == path.split(separator: "/").last.map(String.init)
                    })
                {
                    Thread.sleep(forTimeInterval: 2)
                    return HTTPResponse(status: 200, contentType: "application/json", body: Self.document(n))
                }
                return Self.json(APIRequestPage(items: [], nextAfter: 0))
            }
        case .repeatsPages, .endlessIDs:
            break
        }
        if path == "/v1/vms" {
            let vm = VMInfo(
                id: 1, name: Self.evilName, state: "running", reason: "\u{1B}]0;pwned\u{07}", exitStatus: nil,
                image: "x.elf", memoryMib: 16, vcpus: 1, backend: "alias", initialState: "private", commandLine: "",
                labels: ["team": "\u{1B}[5m"], createdNs: 1, startedNs: 1, endedNs: nil, privateBytes: 0,
                sharedBytes: 0,
                conversions: [:], memoryFaults: 0, consoleBytes: 0)
            return Self.json(VMList(vms: [vm]))
        }
        if path == "/v1/events", request.target.contains("from=end") {
            // A host whose ids never end claims a head as endless: --max-rows, not the head, must end the pull.
            return Self.json(EventPage(events: [], nextAfter: Int64.max / 2))
        }
        if path == "/v1/events" {
            let after = request.target.split(separator: "after=").last.flatMap { Int64($0.prefix { $0.isNumber }) } ?? 0
            let first = mode == .repeatsPages ? 1 : after + 1
            let events = (first..<(first + 1000)).map { id in
                EventEntry(
                    fault: FaultEvent(
                        eventId: id, vmId: 1, vcpu: 0, timeNs: UInt64(id), gpa: 0x20_0000, size: 4096, flags: 8,
                        source: "emulated"))
            }
            return Self.json(EventPage(events: events, nextAfter: first + 999))
        }
        return HTTPResponse(
            status: 404, contentType: "application/json",
            body: Array(#"{"error":{"code":"not_found","message":"no"}}"#.utf8))
    }

    /// A document that is its own canonical form, so its version is the SHA-256 of these bytes.
    static func document(_ n: Int) -> [UInt8] { Array(#"{"n":\#(n)}"#.utf8) }

    static func json<T: Encodable>(_ value: T) -> HTTPResponse {
        HTTPResponse(
            status: 200, contentType: "application/json", body: Array((try? APIJSON.encoder().encode(value)) ?? Data()))
    }

    static func serve(_ mode: Mode) throws -> HTTPServer {
        try HTTPServer(
            configuration: HTTPServerConfiguration(tcp: ("127.0.0.1", 0)), handler: HostileAgent(mode),
            logger: Logger(label: "hostile") { _ in SwiftLogNoOpLogHandler() })
    }
}

/// memgatectl does not trust its agents: every command ends, that host fails with a reason,
/// and nothing an agent sends can drive the operator's terminal.
@Suite struct HostileAgentTests {
    func database() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("memgatectl-fleet-\(UUID().uuidString).db").path
    }

    @Test func auditPullEndsAgainstAHostThatRepeatsItsPages() throws {
        let server = try HostileAgent.serve(.repeatsPages)
        defer { server.stop() }
        let hosts = try hostsFile(["http://127.0.0.1:\(server.tcpPort ?? 0) repeater"])
        let into = database()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: into + suffix) } }
        let first = try ctl(["audit", "pull", "--hosts", hosts, "--into", into, "--json"])
        #expect(first.status == 1)
        let rows = jsonObject(first.stdout)["hosts"] as? [[String: Any]] ?? []
        #expect(rows.first?["events"] as? Int == 1000, "the first page is new and kept")
        #expect((rows.first?["error"] as? String)?.contains("not advancing") == true, "\(first.stdout)")
        // Pulled again, the host sends what the cursor already covers: refused at once, nothing added.
        let again = try ctl(["audit", "pull", "--hosts", hosts, "--into", into, "--json"])
        #expect(again.status == 1)
        #expect((jsonObject(again.stdout)["hosts"] as? [[String: Any]])?.first?["events"] as? Int == 0)
    }

    @Test func auditPullAndEventsStopAtMaxRowsAgainstEndlessIDs() throws {
        let server = try HostileAgent.serve(.endlessIDs)
        defer { server.stop() }
        let hosts = try hostsFile(["http://127.0.0.1:\(server.tcpPort ?? 0) endless"])
        let into = database()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: into + suffix) } }
        let pull = try ctl(["audit", "pull", "--hosts", hosts, "--into", into, "--max-rows", "5500", "--json"])
        #expect(pull.status == 1)
        let row = (jsonObject(pull.stdout)["hosts"] as? [[String: Any]])?.first ?? [:]
        #expect(row["events"] as? Int == 5500 && row["cursor"] as? Int == 5500, "\(pull.stdout)")
        #expect((row["error"] as? String)?.contains("--max-rows") == true)

        let events = try ctl(["events", "--hosts", hosts, "--max-rows", "2500", "--json"])
        #expect(events.status == 1)
        #expect(events.stdout.split(separator: "\n").count == 2500)
        #expect(events.stderr.contains("--max-rows"))
        // Without --max-rows the default bound still ends it.
        let bounded = try ctl(["events", "--hosts", hosts, "--json"])
        #expect(bounded.status == 1)
        #expect(bounded.stdout.split(separator: "\n").count == 100_000)
    }

    @Test func agentTextCannotDriveTheTerminal() throws {
        let server = try HostileAgent.serve(.repeatsPages)
        defer { server.stop() }
        let hosts = try hostsFile(["http://127.0.0.1:\(server.tcpPort ?? 0) evil"])
        for arguments in [["vms"], ["vms", "--json"]] {
            let result = try ctl(arguments + ["--hosts", hosts])
            let output = result.stdout + result.stderr
            let controls = output.unicodeScalars.filter {
                $0.value < 0x20 && $0 != "\n" && $0 != "\t" || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E
            }
            #expect(controls.isEmpty, "\(arguments): \(controls.map { String($0.value, radix: 16) })")
            #expect(output.contains("evil\\u001b[2J"), "\(arguments): \(output)")
            if arguments.contains("--json") {
                // Escaped the JSON way: the output still decodes to the agent's exact name.
                let vms = (jsonObject(result.stdout)["items"] as? [[String: Any]]) ?? []
                #expect(vms.first?["name"] as? String == HostileAgent.evilName, "\(result.stdout)")
            }
        }
    }

    /// memgatectl's own caps and libcurl's are named for what they are, per host.
    @Test(arguments: [
        (HostileAgent.Mode.hugeBody, "larger than 64 MiB"), (.longHeaderLine, "100 KiB"),
        (.manyHeaders, "headers were larger than 256 KiB"),
    ])
    func oversizedAnswersFailTheirHostWithTheLimitNamed(mode: HostileAgent.Mode, message: String) throws {
        let server = try HostileAgent.serve(mode)
        defer { server.stop() }
        let hosts = try hostsFile(["http://127.0.0.1:\(server.tcpPort ?? 0) big"])
        let result = try ctl(["vms", "--hosts", hosts, "--retries", "0"])
        #expect(result.status == 1)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    /// The stream reader holds at most one event's worth (1 MiB) per host: a host whose event never
    /// ends (`endlessEvent`), or that sends millions of empty `data:` lines, each counting against the
    /// limit (`emptyDataLines`), is given up with the limit named, after the events it sent before.
    @Test(arguments: [(HostileAgent.Mode.endlessEvent, "endless"), (.emptyDataLines, "blank")])
    func anEventThatNeverEndsStopsFollowingItsHost(mode: HostileAgent.Mode, name: String) throws {
        let server = try HostileAgent.serve(mode)
        defer { server.stop() }
        let hosts = try hostsFile(["http://127.0.0.1:\(server.tcpPort ?? 0) \(name)"])
        // --max-duration only bounds a regression (it would follow forever); the pass ends by itself.
        let result = try ctl(["events", "--follow", "--hosts", hosts, "--json", "--max-duration", "120"])
        #expect(result.status == 1)
        #expect(result.stdout.contains(#"{"host":"\#(name)","n":1}"#), "\(result.stdout)")
        #expect(result.stderr.contains("larger than 1048576 bytes; not following this host"), "\(result.stderr)")
    }

    /// `audit pull --max-duration` bounds the policy-document phase too: 1000 documents at 2 s each
    /// would take over half an hour; the pull ends at its limit and says which phase it did not finish.
    @Test(.timeLimit(.minutes(2))) func auditPullMaxDurationCoversPolicyDocuments() throws {
        let server = try HostileAgent.serve(.slowPolicyDocuments)
        defer { server.stop() }
        let hosts = try hostsFile(["http://127.0.0.1:\(server.tcpPort ?? 0) slow"])
        let started = Date()
        let result = try ctl([
            "audit", "pull", "--hosts", hosts, "--into", database(), "--max-duration", "3", "--deadline", "5",
        ])
        let seconds = Date().timeIntervalSince(started)
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(
            result.stdout.contains("policy documents not finished within --max-duration")
                || result.stderr.contains("policy documents not finished within --max-duration"),
            "\(result.stdout) \(result.stderr)")
        // 3 s of pulling, a document in flight cut at the limit, and the process's own start and end.
        #expect(seconds < 20, "audit pull --max-duration 3 took \(seconds) s")
    }
}
