import Foundation
import Glibc
import TestSupport
import Testing

/// The second red-team round, against a real agent process: nobody without a token can end the
/// agent or fill its disk, and neither many source addresses nor one read-only token can starve
/// the host. Clients bind distinct 127.0.0.0/8 addresses to be many peers.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct RedTeamTests {
    /// Raises this process's descriptor limit to at least `count`; false where the hard limit forbids it.
    static func canOpen(_ count: Int) -> Bool {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        if limit.rlim_cur >= rlim_t(count) { return true }
        guard limit.rlim_max >= rlim_t(count) else { return false }
        limit.rlim_cur = rlim_t(count)
        return setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0
    }

    static func metric(_ agent: AgentProcess, _ name: String) throws -> Double? {
        let text = try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// Polls a metric until `condition` holds (what the agent has accepted is what the test reads).
    static func waitForMetric(_ agent: AgentProcess, _ name: String, _ condition: (Double) -> Bool) throws -> Double {
        var value = try metric(agent, name) ?? -1
        for _ in 0..<3000 where !condition(value) {
            usleep(10_000)
            value = try metric(agent, name) ?? -1
        }
        return value
    }

    static func sqlite(_ database: String, _ query: String) throws -> String {
        try TestSupport.run("/usr/bin/sqlite3", [database, query]).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    func signIn(_ agent: AgentProcess, _ token: String, from source: String) throws -> Int {
        let client = try BlockingHTTPClient(port: agent.port, source: source)
        return try client.request(
            "POST", "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
            body: Array("token=\(token)".utf8)
        ).status
    }

    func get(_ agent: AgentProcess, _ path: String, token: String?, from source: String) throws -> Int {
        let client = try BlockingHTTPClient(port: agent.port, source: source)
        return try client.request("GET", path, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:]).status
    }

    /// `/metrics` counts the agent's descriptors with getdents64 into its own buffer: with thousands
    /// open (the old readdir copy read past the kernel's record and crashed), it answers and counts them.
    @Test(
        .enabled(
            if: RedTeamTests.canOpen(4096),
            "needs RLIMIT_NOFILE of 4096 for this test's 2,000 connections; the hard limit is lower"))
    func metricsCountsThousandsOfDescriptors() throws {
        let agent = try AgentProcess(extraArguments: ["--max-connections-per-peer", "4096"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var held: [BlockingHTTPClient] = []
        for index in 0..<2000 {
            held.append(
                try BlockingHTTPClient(port: agent.port, source: "127.0.\(20 + index / 250).\(1 + index % 250)"))
        }
        let connections = try Self.waitForMetric(agent, "memgate_http_connections") { $0 >= 2000 }
        #expect(connections >= 2000)
        for _ in 0..<20 {
            let fds = try Self.metric(agent, "process_open_fds") ?? -1
            #expect(fds >= 2000, "process_open_fds \(fds)")
        }
        #expect(agent.isRunning, "the agent survived: \(agent.stderr.suffix(500))")
        withExtendedLifetime(held) {}
    }

    /// Writes refused before admission (no route, no such method, an unparsable body) are counted,
    /// never written one row each; an admitted write keeps its row, whatever its outcome.
    @Test func refusedWritesAreCountedNotWritten() throws {
        let agent = try AgentProcess()
        defer { agent.removeFiles() }
        let refused: [(String, String, String?, String?, Int)] = [
            ("POST", "/nope", nil, nil, 404), ("POST", "/v1/nope", nil, nil, 404), ("PUT", "/", nil, nil, 405),
            ("POST", "/healthz", nil, nil, 405), ("DELETE", "/metrics", nil, nil, 405),
            ("POST", "/login", nil, "{}", 415),
            ("POST", "/v1/nope", AgentProcess.adminToken, nil, 404),
            ("POST", "/v1/vms", AgentProcess.adminToken, "{", 400),
        ]
        for (method, path, token, body, status) in refused {
            let client = try BlockingHTTPClient(port: agent.port)
            var headers: [String: String] = [:]
            if let token { headers["Authorization"] = "Bearer \(token)" }
            if body != nil { headers["Content-Type"] = "application/json" }
            let response = try client.request(method, path, headers: headers, body: Array((body ?? "").utf8))
            #expect(response.status == status, "\(method) \(path): \(response.status) \(response.text)")
        }
        // Admitted (authenticated, routed, parsed): a row, though the VM does not exist.
        #expect(try agent.request("POST", "/v1/vms/999/stop").status == 404)
        #expect(try Self.metric(agent, "memgate_api_refusals_total{kind=\"invalid_write\"}") == Double(refused.count))
        #expect(agent.terminate() == 0)
        #expect(try Self.sqlite(agent.database, "SELECT count(*) FROM api_requests") == "1")
        #expect(
            try Self.sqlite(agent.database, "SELECT path || ' ' || status FROM api_requests") == "/v1/vms/999/stop 404")
        #expect(
            try Self.sqlite(agent.database, "SELECT sum(requests) FROM api_refusals WHERE kind = 'invalid_write'")
                == "\(refused.count)")
    }

    /// Failed sign-ins from 4,116 networks, then a network's worth from one: strangers throttle
    /// guessing but cannot lock out a correct token from an address they do not hold.
    @Test func strangersCannotLockOutACorrectSignIn() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        // One network fails 20 times from 20 addresses: throttled; its addresses are still checked one by one.
        for host in 1...20 { _ = try signIn(agent, "wrong", from: "127.0.7.\(host)") }
        let guesses = try (0..<4).map { _ in try signIn(agent, "wrong", from: "127.0.7.1") }
        #expect(guesses == [401, 401, 401, 429], "\(guesses)")
        #expect(
            try signIn(agent, AgentProcess.adminToken, from: "127.0.7.1") == 429,
            "that address used up its own allowance")
        #expect(
            try signIn(agent, AgentProcess.adminToken, from: "127.0.7.200") == 200,
            "another address of the network signs in")
        // 4,116 more networks fail once each: the table is full and newcomers share one throttled allowance.
        for index in 0..<4116 {
            let status = try signIn(agent, "wrong-\(index)", from: "127.\(1 + index / 256).\(index % 256).1")
            #expect(status == 401 || status == 429)
        }
        #expect(
            try signIn(agent, AgentProcess.adminToken, from: "127.100.0.5") == 200, "a fresh address after a full table"
        )
        #expect(try signIn(agent, AgentProcess.readOnlyToken, from: "127.0.8.1") == 200)
    }

    /// Wrong bearer tokens are throttled by network as sign-ins are, and a correct one from
    /// another address of that network is served.
    @Test func bearerTokenGuessingIsThrottled() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var statuses: [Int: Int] = [:]
        for index in 0..<300 {
            statuses[try get(agent, "/v1/vms", token: "guess-\(index)", from: "127.0.9.1"), default: 0] += 1
        }
        #expect(statuses == [401: 13, 429: 287], "\(statuses)")
        #expect(try get(agent, "/v1/vms", token: AgentProcess.adminToken, from: "127.0.9.1") == 429)
        #expect(try get(agent, "/v1/vms", token: AgentProcess.adminToken, from: "127.0.9.2") == 200)
        #expect(try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/v1/vms").status == 200)
        #expect(try Self.metric(agent, "memgate_api_refusals_total{kind=\"throttled\"}") == 288)
    }

    /// The per-peer cap counts a network, not an address, and past the general slots only a request
    /// with a valid token is served: 17 addresses of one /24 cannot take every slot.
    @Test func connectionSlotsAreCappedByNetworkWithATokenReserve() throws {
        let agent = try AgentProcess(extraArguments: [
            "--max-connections", "40", "--max-connections-per-peer", "16",
            "--token-reserved-connections", "8",
        ])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var held: [BlockingHTTPClient] = []
        for host in 1...17 {
            for _ in 0..<2 {
                if let client = try? BlockingHTTPClient(port: agent.port, source: "127.0.11.\(host)") {
                    held.append(client)
                }
            }
        }
        // 16 in the general pool, up to 4 more in the reserve (closed unless they show a token), the rest refused.
        // Settles at the general pool's 16 (and the Unix connection asking) once the reserve's unclaimed slots close.
        let fromOneNetwork = try Self.waitForMetric(agent, "memgate_http_connections") { $0 == 17 }
        #expect(fromOneNetwork == 17, "\(fromOneNetwork) connections")
        #expect(try get(agent, "/healthz", token: nil, from: "127.0.12.1") == 200, "another network is served")
        for network in 13...14 {
            for host in 1...12 {
                held.append(try BlockingHTTPClient(port: agent.port, source: "127.0.\(network).\(host)"))
            }
        }
        #expect(
            try Self.waitForMetric(agent, "memgate_http_connections") { $0 == 41 } == 41, "the general pool is full")
        #expect(
            try get(agent, "/healthz", token: nil, from: "127.0.15.1") == 503, "general slots full: no token, no slot")
        #expect(
            try get(agent, "/v1/vms", token: AgentProcess.adminToken, from: "127.0.15.2") == 200,
            "a valid token takes the reserve")
        #expect(
            try get(agent, "/v1/vms", token: AgentProcess.readOnlyToken, from: "127.0.11.99") == 200,
            "a valid token from the capped network too")
        #expect(try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/v1/host").status == 200)
        withExtendedLifetime(held) {}
    }

    /// One read-only token cannot hold every stream slot: it gets its share, and an admin still gets in.
    @Test func streamSlotsHaveSharesAndAnAdminReserve() throws {
        let agent = try AgentProcess(extraArguments: [
            "--max-streams", "6", "--admin-stream-reserve", "2", "--max-streams-per-principal", "3",
        ])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        func open(_ token: String) throws -> (BlockingHTTPClient, Int, String) {
            let client = try BlockingHTTPClient(port: agent.port)
            try client.send("GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\r\n")
            var head: [UInt8] = []
            while !head.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)) {
                var byte: UInt8 = 0
                guard recv(client.descriptor, &byte, 1, 0) == 1 else { break }
                head.append(byte)
            }
            let text = String(decoding: head, as: UTF8.self)
            let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
            var body = [UInt8](repeating: 0, count: 4096)
            let count = status == 200 ? 0 : max(recv(client.descriptor, &body, body.count, 0), 0)
            return (client, status, String(decoding: body.prefix(count), as: UTF8.self))
        }
        var streams: [BlockingHTTPClient] = []
        for _ in 0..<3 {
            let (client, status, _) = try open(AgentProcess.readOnlyToken)
            #expect(status == 200)
            streams.append(client)
        }
        let (_, refusedStatus, refusal) = try open(AgentProcess.readOnlyToken)
        #expect(refusedStatus == 503 && refusal.contains("viewer already holds 3"), "\(refusedStatus) \(refusal)")
        for _ in 0..<3 {
            let (client, status, body) = try open(AgentProcess.adminToken)
            #expect(status == 200, "\(body)")
            streams.append(client)
        }
        withExtendedLifetime(streams) {}
    }
}
