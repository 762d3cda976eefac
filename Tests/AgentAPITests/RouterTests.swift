import APITypes
import EventStore
import Foundation
import HTTPServer
import Platform
import Testing

@testable import AgentAPI

/// Requests become typed actions at the edge; everything else is a precise error.
struct RouterTests {
    func request(
        _ method: HTTPMethod, _ target: String, body: String = "", headers: [(name: String, value: String)] = []
    ) -> HTTPRequest {
        HTTPRequest(method: method, target: target, headers: [("Host", "x")] + headers, body: Array(body.utf8))
    }

    func parse(
        _ method: HTTPMethod, _ target: String, body: String = "",
        headers: [(name: String, value: String)] = []
    ) -> Result<AgentAction, APIError> {
        Result { () throws(APIError) in try APIRouter.parse(request(method, target, body: body, headers: headers)) }
    }

    static let json: [(name: String, value: String)] = [("Content-Type", "application/json")]

    @Test func everyRouteParses() throws {
        #expect(try parse(.GET, "/healthz").get() == .health)
        #expect(try parse(.GET, "/metrics").get() == .metrics)
        #expect(try parse(.GET, "/v1/host").get() == .host)
        #expect(try parse(.GET, "/v1/vms").get() == .listVMs)
        #expect(try parse(.GET, "/v1/vms/7").get() == .getVM(7))
        #expect(try parse(.DELETE, "/v1/vms/7").get() == .deleteVM(7))
        #expect(try parse(.POST, "/v1/vms/7/start").get() == .startVM(7))
        #expect(try parse(.POST, "/v1/vms/7/pause").get() == .pauseVM(7))
        #expect(try parse(.POST, "/v1/vms/7/resume").get() == .resumeVM(7))
        #expect(try parse(.POST, "/v1/vms/7/stop").get() == .stopVM(7))
        #expect(try parse(.GET, "/v1/vms/7/console?after=12").get() == .console(7, after: 12))
        // Offsets past 2^31: a guest may write more than 2 GiB of console in its life.
        #expect(try parse(.GET, "/v1/vms/7/console?after=3000000000").get() == .console(7, after: 3_000_000_000))
        #expect(try parse(.GET, "/v1/vms/7/memory").get() == .memory(7))
        // Issue 30 and 31: a past moment, the audit routes, and addresses as every label shows them (hex).
        #expect(try parse(.GET, "/v1/vms/7/memory?at=42").get() == .pastMemory(7, at: .event(42)))
        #expect(
            try parse(.GET, "/v1/vms/7/memory?at=1970-01-01T00:00:01Z").get()
                == .pastMemory(7, at: .time(1_000_000_000)))
        #expect(
            try parse(.GET, "/v1/vms/7/memory.svg?from=0x400000&to=4202496").get()
                == .memorySVG(7, from: 0x40_0000, to: 4_202_496))
        #expect((try? parse(.GET, "/v1/vms/7/memory.svg?from=0xZZ").get()) == nil)
        #expect(try parse(.GET, "/v1/audit/head").get() == .auditHead)
        #expect(try parse(.GET, "/v1/events?kinds=all&after=3").get() == .allEvents(after: 3, limit: 100))
        #expect((try? parse(.GET, "/v1/events?kinds=some").get()) == nil)
        #expect(
            try parse(
                .PUT, "/v1/policy", body: "{}",
                headers: Self.json + [("If-Match", "*"), ("MemGate-Change", "rollback of rollout 3")]
            ).get()
                == .putPolicy(document: Array("{}".utf8), ifMatch: "*", channel: "rollback of rollout 3"))
        #expect(
            (try? parse(
                .PUT, "/v1/policy", body: "{}",
                headers: Self.json + [("If-Match", "*"), ("MemGate-Change", "rollout x")]
            ).get()) == nil)
        #expect(try parse(.GET, "/v1/events?after=5&limit=10").get() == .events(after: 5, limit: 10, fromEnd: false))
        #expect(try parse(.GET, "/v1/events?from=end").get() == .events(after: 0, limit: 100, fromEnd: true))
        #expect(try parse(.GET, "/v1/policy").get() == .getPolicy)
        #expect(try parse(.GET, "/v1/policy/history").get() == .policyHistory(limit: 100))
        #expect(
            try parse(.POST, "/v1/policy/validate", body: "{}", headers: Self.json).get()
                == .validatePolicy(document: Array("{}".utf8)))
        #expect(
            try parse(.PUT, "/v1/policy", body: "{}", headers: Self.json + [("If-Match", "\"v\"")]).get()
                == .putPolicy(document: Array("{}".utf8), ifMatch: "\"v\""))
        let create = try? parse(
            .POST, "/v1/vms", body: #"{"name":"a","image":"hello.elf","memory_mib":32,"labels":{"t":"x"}}"#,
            headers: Self.json
        ).get()
        #expect(create == .createVM(VMCreateRequest(name: "a", image: "hello.elf", memoryMib: 32, labels: ["t": "x"])))
    }

    @Test func filtersAreCheckedAndDecoded() throws {
        guard
            case .conversions(let filter) = try parse(
                .GET,
                "/v1/conversions?vm=3&direction=to_shared&trigger=implicit&decision=denied&since=10&until=20&cursor=99&limit=5"
            ).get()
        else {
            Issue.record("not conversions")
            return
        }
        #expect(
            filter.vm == 3 && filter.direction == "to_shared" && filter.trigger == "implicit"
                && filter.decision == "denied")
        #expect(filter.since == 10 && filter.until == 20 && filter.after == 99 && filter.limit == 5)
        for bad in [
            "limit=0", "limit=1001", "limit=x", "vm=0", "direction=sideways", "since=-1", "cursor=1&cursor=2", "vm=%ZZ",
        ] {
            guard case .failure(let error) = parse(.GET, "/v1/conversions?\(bad)") else {
                Issue.record("\(bad) accepted")
                continue
            }
            #expect(error.status == 400, "\(bad)")
        }
    }

    @Test func errorsHaveTheirStatus() {
        let cases: [(HTTPMethod, String, String, [(name: String, value: String)], Int)] = [
            (.GET, "/nope", "", [], 404),
            (.GET, "/v1/vms/abc", "", [], 404),
            (.GET, "/v1/vms/-1", "", [], 404),
            (.GET, "/v1/vms/99999999999999999999", "", [], 404),
            (.PUT, "/v1/vms", "", [], 405),
            (.TRACE, "/v1/host", "", [], 405),
            (.POST, "/v1/vms", "{}", [], 415),
            (.POST, "/v1/vms", "not json", Self.json, 400),
            (.POST, "/v1/vms", "[1]", Self.json, 400),
            (.POST, "/v1/vms", #"{"image":"x"}"#, Self.json, 422),
            (.POST, "/v1/vms", #"{"name":"a","image":"x","vcpus":"two"}"#, Self.json, 422),
            (.POST, "/v1/vms", #"{"name":"a","image":"x","name":"b"}"#, Self.json, 422),
            (.POST, "/v1/vms", #"{"name":"a","image":"x","labels":{"t":"1","t":"2"}}"#, Self.json, 422),
            (.PUT, "/v1/policy", "{}", Self.json, 428),
            (.POST, "/v1/policy/validate", "{}", [("Content-Type", "text/plain")], 415),
        ]
        for (method, target, body, headers, status) in cases {
            guard case .failure(let error) = parse(method, target, body: body, headers: headers) else {
                Issue.record("\(method) \(target) accepted")
                continue
            }
            #expect(error.status == status, "\(method) \(target): \(error)")
        }
        guard case .failure(let missing) = parse(.POST, "/v1/vms", body: #"{"image":"x"}"#, headers: Self.json) else {
            return
        }
        #expect(missing.message.contains("name"))
        guard
            case .failure(let wrongType) = parse(
                .POST, "/v1/vms", body: #"{"name":"a","image":"x","memory_mib":"lots"}"#, headers: Self.json)
        else { return }
        #expect(wrongType.message.contains("memory_mib"))
        guard
            case .failure(let repeated) = parse(
                .POST, "/v1/vms", body: #"{"name":"a","image":"x","labels":{"t":"1","t":"2"}}"#, headers: Self.json)
        else { return }
        #expect(repeated.message.contains("labels.t") && repeated.message.contains("twice"), "\(repeated.message)")
        guard case .failure(let notAllowed) = parse(.PUT, "/v1/vms") else { return }
        #expect(notAllowed.headers["Allow"] == "GET, POST")
    }

    @Test func mutatingActions() {
        #expect(AgentAction.createVM(VMCreateRequest(name: "a", image: "b")).isMutating)
        #expect(AgentAction.putPolicy(document: [], ifMatch: "*").isMutating)
        #expect(AgentAction.deleteVM(1).isMutating)
        #expect(!AgentAction.validatePolicy(document: []).isMutating)
        #expect(!AgentAction.listVMs.isMutating)
    }

    @Test func errorResponsesHaveTheOneShape() throws {
        let response = APIError(409, "conflict", "VM 3 is \"running\"").response
        #expect(response.status == 409)
        let body = try JSONDecoder().decode(APIErrorBody.self, from: Data(response.body))
        #expect(body == APIErrorBody(code: "conflict", message: "VM 3 is \"running\""))
    }

    @Test func etagsAreQuotedAndUnquoted() {
        #expect(ETag.quoted("abc") == "\"abc\"")
        #expect(ETag.version("\"abc\"") == "abc")
        #expect(ETag.version("W/\"abc\"") == "abc")
        #expect(ETag.version("*") == "*")
        #expect(ETag.version(" \"abc\" ") == "abc")
    }
}

struct TokenStoreTests {
    static let text = """
        # operators
        ops admin 0123456789abcdef0123
        viewer read-only fedcba9876543210fedc   # dashboards

        """

    @Test func parsesAndAuthenticates() throws {
        let tokens = try TokenStore(text: Self.text)
        #expect(tokens.count == 2)
        #expect(tokens.authenticate("Bearer 0123456789abcdef0123") == Principal(name: "ops", role: .admin))
        #expect(tokens.authenticate("bearer fedcba9876543210fedc") == Principal(name: "viewer", role: .readOnly))
        #expect(tokens.authenticate("Bearer 0123456789abcdef012") == nil)
        #expect(tokens.authenticate("Bearer 0123456789abcdef01234") == nil)
        #expect(tokens.authenticate("Basic 0123456789abcdef0123") == nil)
        #expect(tokens.authenticate(nil) == nil)
    }

    /// CRLF files, secrets holding `#`, and names given twice.
    @Test func crlfAndHashesInSecretsAndDuplicateNames() throws {
        let crlf = try TokenStore(
            text: "ops admin 0123456789abcdef0123\r\nviewer read-only fedc#a9876543210fedc # note\r\n")
        #expect(crlf.count == 2)
        #expect(crlf.authenticate("Bearer 0123456789abcdef0123")?.name == "ops")
        #expect(crlf.authenticate("Bearer fedc#a9876543210fedc")?.name == "viewer")
        #expect(crlf.authenticate("Bearer fedc") == nil)
        #expect(throws: TokenFileError.self) {
            try TokenStore(text: "ops admin 0123456789abcdef0123\nops read-only fedcba9876543210fedc\n")
        }
        // A secret that starts with # reads as a comment: the line is short a field, and says so.
        #expect(throws: TokenFileError.self) { try TokenStore(text: "ops admin #123456789abcdef0123\n") }
    }

    @Test func followsASymlinkedFileAndChecksItsOwnMode() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-tokens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("..data-tokens").path
        try Data(Self.text.utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: file)
        let link = directory.appendingPathComponent("tokens").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
        #expect(try TokenStore.load(path: link).count == 2)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        #expect(throws: TokenFileError.self) { try TokenStore.load(path: link) }
    }

    @Test func rejectsBadFiles() {
        for bad in [
            "ops admin", "ops root 0123456789abcdef0123", "ops admin short",
            "a admin 0123456789abcdef0123\nb admin 0123456789abcdef0123",
        ] {
            #expect(throws: TokenFileError.self, "\(bad)") { try TokenStore(text: bad) }
        }
    }

    @Test func refusesAFileOthersCanRead() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-tokens-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(Self.text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: TokenFileError.self) { try TokenStore.load(path: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(try TokenStore.load(path: path).count == 2)
    }

    @Test func constantTimeComparison() {
        #expect(TokenStore.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!TokenStore.constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!TokenStore.constantTimeEquals(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!TokenStore.constantTimeEquals([], Array("a".utf8)))
    }
}

struct ImageDirectoryTests {
    @Test func onlyRegularFilesInsideTheDirectory() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-images-\(UUID().uuidString)")
        let images = base.appendingPathComponent("images")
        try FileManager.default.createDirectory(
            at: images.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        try Data([1, 2, 3]).write(to: images.appendingPathComponent("sub/ok.elf"))
        try Data([9]).write(to: base.appendingPathComponent("secret.elf"))
        try FileManager.default.createSymbolicLink(
            atPath: images.appendingPathComponent("escape.elf").path,
            withDestinationPath: base.appendingPathComponent("secret.elf").path)
        try FileManager.default.createSymbolicLink(
            atPath: images.appendingPathComponent("inside.elf").path,
            withDestinationPath: "sub/ok.elf")
        let directory = try ImageDirectory(path: images.path)
        #expect(try directory.load("sub/ok.elf") == [1, 2, 3])
        #expect(try directory.load("inside.elf") == [1, 2, 3])
        for bad in ["../secret.elf", "sub/../../secret.elf", "/etc/passwd", "escape.elf", "sub", "missing.elf", ""] {
            #expect(throws: APIError.self, "\(bad)") { try directory.load(bad) }
        }
    }
}

struct PrometheusTextTests {
    @Test func samplesAndHistograms() {
        var out = PrometheusText()
        out.help("x_total", "An x.", type: "counter")
        out.sample("x_total", ["b": "2", "a": "q\"uote"], 3)
        var histogram = LatencyHistogram()
        histogram.observe(nanos: 300_000)
        out.histogram("lat_seconds", ["route": "/r"], histogram)
        #expect(out.text.contains("# TYPE x_total counter\nx_total{a=\"q\\\"uote\",b=\"2\"} 3\n"))
        #expect(out.text.contains("lat_seconds_bucket{le=\"0.00025\",route=\"/r\"} 0\n"))
        #expect(out.text.contains("lat_seconds_bucket{le=\"0.0005\",route=\"/r\"} 1\n"))
        #expect(out.text.contains("lat_seconds_bucket{le=\"+Inf\",route=\"/r\"} 1\n"))
        #expect(out.text.contains("lat_seconds_count{route=\"/r\"} 1\n"))
    }
}

struct RefusalLedgerTests {
    @Test func countsASecondAtATimeAndCapsTheAddresses() {
        var ledger = RefusalLedger()
        for _ in 0..<1000 { #expect(ledger.note(peer: "10.0.0.1", kind: .unauthenticated, second: 100).isEmpty) }
        for index in 0..<(RefusalLedger.peersPerSecond + 5) {
            #expect(ledger.note(peer: "10.1.0.\(index)", kind: .forbidden, second: 100).isEmpty)
        }
        #expect(ledger.drain(before: 100).isEmpty, "a second still running is not written")
        let closed = ledger.note(peer: "10.0.0.1", kind: .signInFailed, second: 101)
        #expect(closed.count == RefusalLedger.peersPerSecond + 1)
        #expect(
            closed.first { $0.peer == "10.0.0.1" }
                == RefusalCount(second: 100, peer: "10.0.0.1", kind: .unauthenticated, requests: 1000))
        #expect(closed.first { $0.peer == RefusalLedger.otherPeer }?.requests == 6)
        #expect(closed.reduce(0) { $0 + $1.requests } == 1000 + UInt64(RefusalLedger.peersPerSecond) + 5)
        #expect(
            ledger.drain(before: 102) == [RefusalCount(second: 101, peer: "10.0.0.1", kind: .signInFailed, requests: 1)]
        )
        #expect(ledger.drain().isEmpty)
    }
}
