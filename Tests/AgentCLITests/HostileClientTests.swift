import Foundation
import HTTPServer
import Synchronization
import TestSupport
import Testing

/// Clients trying to take a host down, against a real agent process with a running
/// VM: nothing they do may grow the agent without bound, fill its disk, hold its
/// connection slots, or stall its event loop, and the VM runs on.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct HostileClientTests {
    /// Resident memory of a process, in bytes.
    static func rss(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// A value of the agent's /metrics, read over the Unix socket.
    static func metric(_ agent: AgentProcess, _ name: String) throws -> Double? {
        let text = try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    func spinner(_ agent: AgentProcess) throws -> Int {
        let response = try agent.request(
            "POST", "/v1/vms",
            json: #"{"name":"bystander","image":"spin-io.elf","command_line":"forever","memory_mib":16}"#)
        #expect(response.status == 201, "\(response.text)")
        return AgentProcess.object(response)["id"] as? Int ?? -1
    }

    func expectRunning(_ agent: AgentProcess, _ id: Int) throws {
        let vm = AgentProcess.object(try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/v1/vms/\(id)"))
        #expect(vm["state"] as? String == "running", "\(vm)")
    }

    /// Clients that pipeline `GET /metrics` and never read: answers stop at the per-connection cap,
    /// the agent's memory stays put, others are served at once, and the clients are cut off.
    @Test func nonReadingPipelinersNeitherGrowNorStallTheAgent() throws {
        // Stalled writers are cut off after 10 s: an event loop that waited for one would stall a
        // request that long, far past the bound below, which only scheduling noise must stay under.
        let agent = try AgentProcess(extraArguments: ["--write-stall-timeout", "10"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let vm = try spinner(agent)
        let before = Self.rss(agent.pid)
        var pipeliners: [BlockingHTTPClient] = []
        for _ in 0..<4 {
            let client = try BlockingHTTPClient(port: agent.port)
            // 2000 answers of about 15 KB each: 30 MB per connection if the agent answered them all.
            try client.send(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 2000))
            pipeliners.append(client)
        }
        var slowest = 0.0
        for _ in 0..<20 {
            let started = Date()
            #expect(try agent.request("GET", "/healthz", token: "").status == 200)
            #expect(try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/v1/host").status == 200)
            slowest = max(slowest, Date().timeIntervalSince(started))
        }
        #expect(slowest < 5.0, "slowest /healthz + Unix /v1/host: \(slowest) s")
        var connections = try Self.metric(agent, "memgate_http_connections") ?? -1
        for _ in 0..<6000 where connections > 1 {
            usleep(10_000)
            connections = try Self.metric(agent, "memgate_http_connections") ?? -1
        }
        #expect(connections == 1, "only the metrics request itself is left once the pipeliners are cut off")
        let growth = Self.rss(agent.pid) - before
        print(
            "hostile: four non-reading pipeliners grew the agent by \(growth >> 10) KiB; slowest answer meanwhile \(Int(slowest * 1000)) ms"
        )
        #expect(growth < 32 << 20, "the agent grew by \(growth >> 20) MiB")
        try expectRunning(agent, vm)
        withExtendedLifetime(pipeliners) {}
    }

    /// A flood of unauthenticated writes is counted, a row per second at most, never a row each.
    @Test func anUnauthenticatedFloodDoesNotFillTheDisk() throws {
        let agent = try AgentProcess()
        defer { agent.removeFiles() }
        let vm = try spinner(agent)
        let started = Date()
        let perConnection = 5000, connections = 4, batch = 100
        let request =
            "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        for _ in 0..<connections {
            let client = try BlockingHTTPClient(port: agent.port)
            for _ in 0..<(perConnection / batch) {
                try client.send(String(repeating: request, count: batch))
                for _ in 0..<batch { #expect(try client.readResponse()?.status == 401) }
            }
        }
        let seconds = Int(Date().timeIntervalSince(started).rounded(.up))
        let total = perConnection * connections
        #expect(try Self.metric(agent, "memgate_api_refusals_total{kind=\"unauthenticated\"}") == Double(total))
        try expectRunning(agent, vm)
        #expect(agent.terminate() == 0)
        func sql(_ query: String) throws -> String {
            try TestSupport.run("/usr/bin/sqlite3", [agent.database, query]).stdout.trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        #expect(try sql("SELECT sum(requests) FROM api_refusals WHERE kind = 'unauthenticated'") == "\(total)")
        // One row per second (and kind and address), however many requests.
        let rows = Int(try sql("SELECT count(*) FROM api_refusals")) ?? -1
        #expect(rows >= 1 && rows <= seconds + 1, "\(rows) rows for \(seconds) s")
        print("hostile: \(total) unauthenticated writes in \(seconds) s left \(rows) api_refusals rows")
        #expect(try sql("SELECT count(*) FROM api_requests") == "1", "only the admitted create is a row")
        let pages = Int(try sql("PRAGMA page_count")) ?? 0, pageSize = Int(try sql("PRAGMA page_size")) ?? 0
        #expect(pages * pageSize < 1 << 20, "\(pages * pageSize) bytes after \(total) refused requests")
    }

    /// Clients that send headers and then a body byte now and then are cut off at the body's
    /// deadline; while they hold every TCP slot, the Unix socket still gets in.
    @Test func bodyDrippersAreCutOffAndTheUnixSocketAlwaysGetsIn() throws {
        let agent = try AgentProcess(extraArguments: ["--max-connections", "4", "--body-timeout", "3"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var drippers: [BlockingHTTPClient] = []
        for _ in 0..<4 {
            let client = try BlockingHTTPClient(port: agent.port, timeoutMilliseconds: 30_000)
            try client.send(
                "POST /v1/policy/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(agent.adminSecret)\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            drippers.append(client)
        }
        // Every TCP slot is taken (the fifth is refused), the operator's socket is not. The fifth waits in the
        // token reserve for a credential it never sends: 503 and closed within 2 s, so the client only reads.
        let fifth = try BlockingHTTPClient(port: agent.port).readResponse()
        #expect(fifth?.status == 503, "\(fifth?.text ?? "nil")")
        #expect(try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/v1/host").status == 200)
        // A byte each, as a dripper would, then the deadline ends them all: 408, closed.
        for client in drippers { try client.send(" ") }
        for client in drippers {
            let response = try client.readResponse()
            #expect(response?.status == 408, "\(response?.text ?? "nil")")
        }
        var answered = false
        for _ in 0..<3000 where !answered {
            answered = (try? agent.request("GET", "/healthz", token: "").status) == 200
            if !answered { usleep(10_000) }
        }
        #expect(answered, "TCP slots come back once the drippers are gone")
    }

    /// Policy dry runs grow with their body: they run on workers, never on the event loop.
    /// Were one to run on the loop, a /healthz sent meanwhile would wait for it; here each
    /// /healthz must come back in a small fraction of one validation's time.
    @Test func largeValidationsDoNotStallTheEventLoop() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let rule = #"{"match":{"vm":"t*"},"action":"deny"},"#
        let rules = String(repeating: rule, count: (1 << 20) / rule.utf8.count - 2).dropLast()
        let document = Array((#"{"defaults":{"explicit":"allow"},"rules":["# + rules + "]}").utf8)
        #expect(document.count < 1 << 20)
        let port = agent.port, token = agent.adminSecret
        let group = DispatchGroup()
        let results = Mutex<[(status: Int, seconds: Double)]>([])
        for _ in 0..<3 {
            DispatchQueue.global().async(group: group) {
                let started = Date()
                let status =
                    (try? BlockingHTTPClient(port: port, timeoutMilliseconds: 120_000)
                        .request(
                            "POST", "/v1/policy/validate",
                            headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                            body: document
                        ).status) ?? -1
                results.withLock { $0.append((status, Date().timeIntervalSince(started))) }
            }
        }
        var slowest = 0.0
        while group.wait(timeout: .now() + .milliseconds(5)) == .timedOut {
            let started = Date()
            #expect(try agent.request("GET", "/healthz", token: "").status == 200)
            slowest = max(slowest, Date().timeIntervalSince(started))
        }
        let done = results.withLock { $0 }
        #expect(done.map(\.status) == [200, 200, 200])
        let quickest = done.map(\.seconds).min() ?? 0
        #expect(
            slowest < quickest / 4,
            "slowest /healthz \(slowest) s while 1 MiB policies were validated (quickest \(quickest) s)")
    }

    /// Admitted writes are recorded before they are answered: a `kill -9` loses none of their rows.
    @Test func everyAnsweredWriteSurvivesKillNine() throws {
        let agent = try AgentProcess()
        defer { agent.removeFiles() }
        let documents = [#"{"defaults":{"implicit":"deny"}}"#, #"{"defaults":{"implicit":"allow"}}"#]
        let client = try BlockingHTTPClient(port: agent.port)
        let writes = 300
        for index in 0..<writes {
            let response = try client.request(
                "PUT", "/v1/policy",
                headers: [
                    "Authorization": "Bearer \(agent.adminSecret)", "Content-Type": "application/json", "If-Match": "*",
                ],
                body: Array(documents[index % 2].utf8))
            #expect(response.status == 200)
        }
        agent.terminate(signal: SIGKILL)
        // What the ring holds goes into SQLite when the database is next opened.
        #expect(try TestSupport.runAgent(["db", "migrate", "--db", agent.database]).status == 0)
        let rows = try TestSupport.run(
            "/usr/bin/sqlite3",
            [agent.database, "SELECT count(*) FROM api_requests WHERE method = 'PUT' AND status = 200"])
        #expect(rows.stdout == "\(writes)\n")
    }

    /// A second agent on a live agent's socket is refused and the first keeps its socket.
    @Test func aLiveAgentsSocketIsNeverTakenOver() throws {
        let first = try AgentProcess()
        defer {
            first.terminate()
            first.removeFiles()
        }
        let second = try RunningProcess(
            try TestSupport.binaryPath("memgate-agent"),
            [
                "serve", "--listen", "127.0.0.1:0", "--unix", first.socket, "--no-record",
            ])
        #expect(second.waitForExit(seconds: 30))
        if second.isRunning { second.kill() }
        #expect(second.wait() != 0)
        #expect(second.stderr.contains("another process is serving on this socket"), "\(second.stderr)")
        #expect(try BlockingHTTPClient(unixPath: first.socket).request("GET", "/v1/host").status == 200)
    }

    /// A symlink planted at `<db>-ring` is refused before anything is written through it.
    @Test func aSymlinkedRingIsRefusedAndItsTargetUntouched() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-ring-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("precious")
        let bytes = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0) })
        try bytes.write(to: target)
        let database = directory.appendingPathComponent("agent.db").path
        try FileManager.default.createSymbolicLink(atPath: database + "-ring", withDestinationPath: target.path)
        let agent = try RunningProcess(
            try TestSupport.binaryPath("memgate-agent"),
            [
                "serve", "--listen", "127.0.0.1:0", "--db", database, "--run-dir",
                directory.appendingPathComponent("run").path,
            ])
        #expect(agent.waitForExit(seconds: 30))
        if agent.isRunning { agent.kill() }
        #expect(agent.wait() != 0)
        #expect(agent.stderr.contains("symbolic link"), "\(agent.stderr)")
        #expect(try Data(contentsOf: target) == bytes)
    }
}
