import Foundation
import HTTPServer
import SQLite
import TestSupport
import Testing

/// `memgate-agent serve` as orchestration tools use it: a real agent process,
/// real guests on /dev/kvm, real SQLite, HTTP over real sockets.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ServeTests {
    func create(_ agent: AgentProcess, _ body: String) throws -> Int {
        let response = try agent.request("POST", "/v1/vms", json: body)
        #expect(response.status == 201, "\(response.text)")
        return AgentProcess.object(response)["id"] as? Int ?? -1
    }

    @Test func vmLifecycleThroughTheAPI() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let id = try create(
            agent,
            #"{"name":"spinner","image":"spin-io.elf","command_line":"forever","memory_mib":16,"start":false,"labels":{"team":"a"}}"#
        )
        #expect(AgentProcess.object(try agent.request("GET", "/v1/vms/\(id)"))["state"] as? String == "created")
        #expect(AgentProcess.object(try agent.request("POST", "/v1/vms/\(id)/start"))["state"] as? String == "running")
        #expect(AgentProcess.object(try agent.request("POST", "/v1/vms/\(id)/pause"))["state"] as? String == "paused")
        #expect(try agent.request("POST", "/v1/vms/\(id)/pause").status == 409)
        #expect(AgentProcess.object(try agent.request("POST", "/v1/vms/\(id)/resume"))["state"] as? String == "running")
        #expect(try agent.request("DELETE", "/v1/vms/\(id)").status == 409)
        let stopped = AgentProcess.object(try agent.request("POST", "/v1/vms/\(id)/stop"))
        #expect(stopped["state"] as? String == "stopped")
        #expect((stopped["reason"] as? String)?.contains("stopped through the API by admin") == true)
        #expect((stopped["labels"] as? [String: String]) == ["team": "a"])
        #expect(try agent.request("DELETE", "/v1/vms/\(id)").status == 204)
        #expect(try agent.request("GET", "/v1/vms/\(id)").status == 404)

        // A guest that converts memory: its map, console and rows through the API.
        let implicit = try create(agent, #"{"name":"converter","image":"implicit.elf","memory_mib":32}"#)
        let ended = try agent.waitForEnd(implicit)
        #expect(ended["exit_status"] as? Int == 0)
        let memory = AgentProcess.object(try agent.request("GET", "/v1/vms/\(implicit)/memory"))
        #expect(memory["private_bytes"] as? Int == 30 << 20)
        #expect((memory["runs"] as? [[String: Any]])?.count == 1)
        let console = AgentProcess.object(try agent.request("GET", "/v1/vms/\(implicit)/console?after=0"))
        #expect((console["data"] as? String)?.contains("shared=") == true)
        let after = console["next_offset"] as? Int ?? 0
        #expect(
            (AgentProcess.object(try agent.request("GET", "/v1/vms/\(implicit)/console?after=\(after)"))["data"]
                as? String) == "")
        let conversions = AgentProcess.object(
            try agent.request("GET", "/v1/conversions?vm=\(implicit)&trigger=implicit"))
        #expect((conversions["items"] as? [[String: Any]])?.count == 2)
        let faults = AgentProcess.object(try agent.request("GET", "/v1/memory-faults?vm=\(implicit)&limit=1"))
        #expect((faults["items"] as? [[String: Any]])?.count == 1)
        #expect(faults["next_cursor"] as? String != nil)

        // Images outside --images-dir are refused, and nothing is created.
        let escape = try agent.request("POST", "/v1/vms", json: #"{"name":"x","image":"../tokens"}"#)
        #expect(escape.status == 422)
        let list = AgentProcess.object(try agent.request("GET", "/v1/vms"))
        #expect((list["vms"] as? [[String: Any]])?.count == 1)
    }

    /// A host where `protect` cannot work is simulated by forcing the fallback: /v1/host
    /// says so, and a 4-vCPU conversion guest still runs clean through `memslot`.
    @Test(arguments: ["protect", "memslot"])
    func aliasMechanismIsReportedAndEitherRunsConversions(mechanism: String) throws {
        let agent = try AgentProcess(extraArguments: mechanism == "memslot" ? ["--alias-mechanism", "memslot"] : [])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let host = AgentProcess.object(try agent.request("GET", "/v1/host"))
        let alias = try #require(host["alias_mechanism"] as? [String: Any])
        // What the probe found is the host's; what it implies, and the override, are the contract.
        let outcome = alias["probe_outcome"] as? String ?? ""
        let probed = ["mmio_exit", "memory_fault_exit"].contains(outcome) ? "protect" : "memslot"
        #expect(
            ["mmio_exit", "memory_fault_exit", "run_failed", "no_exit", "unavailable"].contains(outcome), "\(outcome)")
        #expect(alias["chosen"] as? String == (mechanism == "memslot" ? "memslot" : probed))
        #expect(alias["overridden"] as? Bool == (mechanism == "memslot" && probed != "memslot"))
        let id = try create(
            agent,
            #"{"name":"windows","image":"smp-convert.elf","vcpus":4,"memory_mib":32,"command_line":"windows 100 discard"}"#
        )
        let ended = try agent.waitForEnd(id, seconds: 120)
        #expect(ended["state"] as? String == "stopped" && ended["exit_status"] as? Int == 0, "\(ended)")
        let faults = AgentProcess.object(try agent.request("GET", "/v1/memory-faults?vm=\(id)"))
        #expect((faults["items"] as? [[String: Any]])?.isEmpty == true)
        let applied = AgentProcess.object(
            try agent.request("GET", "/v1/conversions?vm=\(id)&decision=applied&limit=1000"))
        #expect((applied["items"] as? [[String: Any]])?.count == 800)
    }

    @Test func crashingAndFaultingGuestsLeaveTheAgentAndOtherVMsServing() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let bystander = try create(
            agent, #"{"name":"bystander","image":"spin-io.elf","command_line":"forever","memory_mib":16}"#)
        let crash = try create(agent, #"{"name":"crasher","image":"crash.elf","memory_mib":16}"#)
        #expect(try agent.waitForEnd(crash)["state"] as? String == "crashed")
        let etag = try #require(try agent.request("GET", "/v1/policy").headers["etag"])
        #expect(
            try agent.request(
                "PUT", "/v1/policy", json: #"{"defaults":{"implicit":"deny"}}"#, headers: ["If-Match": etag]
            ).status == 200)
        let faulter = try create(agent, #"{"name":"faulter","image":"implicit.elf","memory_mib":16}"#)
        let faulted = try agent.waitForEnd(faulter)
        #expect(faulted["state"] as? String == "faulted")
        #expect((faulted["reason"] as? String)?.contains("refused") == true)
        #expect(AgentProcess.object(try agent.request("GET", "/v1/vms/\(bystander)"))["state"] as? String == "running")
        #expect(try agent.request("GET", "/healthz", token: "").status == 200)
        let denials = AgentProcess.object(try agent.request("GET", "/v1/conversions?decision=denied"))
        #expect((denials["items"] as? [[String: Any]])?.count == 1)
    }

    /// Prometheus counters never decrease for the life of the process: a deleted VM's
    /// counts stay in them, and every known series is there from the start, at 0.
    @Test func metricsCountersNeverGoDown() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        func counters() throws -> [String: Double] {
            let text = try agent.request("GET", "/metrics", token: "").text
            var samples: [String: Double] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("memgate_") && line.contains("_total") {
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                    continue
                }
                samples[String(line[..<space])] = value
            }
            return samples
        }
        let fresh = try counters()
        #expect(fresh[#"memgate_vm_exits_total{reason="memory_fault"}"#] == 0)
        #expect(fresh[#"memgate_memory_faults_total{source="kvm"}"#] == 0)
        #expect(fresh[#"memgate_conversions_total{decision="denied",direction="to_private",trigger="implicit"}"#] == 0)
        let id = try create(agent, #"{"name":"converter","image":"implicit.elf","memory_mib":32}"#)
        _ = try agent.waitForEnd(id)
        let before = try counters()
        #expect(try agent.request("DELETE", "/v1/vms/\(id)").status == 204)
        let after = try counters()
        for (series, value) in before
        where series.hasPrefix("memgate_vm_") || series.hasPrefix("memgate_memory_")
            || series.hasPrefix("memgate_conversions_")
        {
            #expect(
                (after[series] ?? -1) >= value,
                "\(series) went from \(value) to \(after[series] ?? -1) when its VM was deleted")
        }
        let applied = after.filter { $0.key.hasPrefix("memgate_conversions_total") && $0.key.contains("applied") }
            .values.reduce(0, +)
        #expect(applied == 2, "the implicit guest's two conversions are still counted after its VM is gone")
    }

    /// What an operator alerts on is there, and `promtool check metrics` finds nothing to fix.
    @Test func metricsAnOperatorAlertsOnPassPromtool() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let spinner = try create(
            agent, #"{"name":"spinner","image":"spin-io.elf","command_line":"forever","memory_mib":16}"#)
        let converter = try create(agent, #"{"name":"converter","image":"implicit.elf","memory_mib":32}"#)
        _ = try agent.waitForEnd(converter)
        let text = try agent.request("GET", "/metrics", token: "").text
        let version = try #require(agent.request("GET", "/v1/policy").headers["etag"]).trimmingCharacters(
            in: CharacterSet(charactersIn: "\""))
        for expected in [
            "memgate_build_info{version=", "memgate_policy_info{name=\"built-in\",version=\"\(version)\"} 1",
            "memgate_vm_shared_bytes{name=\"spinner\",vm_id=\"\(spinner)\"}",
            "memgate_vm_private_bytes{name=\"converter\",vm_id=\"\(converter)\"}",
            "memgate_converted_bytes_total{decision=\"applied\",direction=\"to_shared\",trigger=\"implicit\"} 4096",
            "memgate_conversion_duration_seconds_count 2", "memgate_events_unrecorded_total{kind=\"fault\"} 0",
            "memgate_event_store_backlog_writes", "memgate_event_store_lag_seconds", "process_open_fds",
            "process_resident_memory_bytes",
        ] {
            #expect(text.contains(expected), "/metrics lacks \(expected)")
        }
        let promtool = "/usr/bin/promtool"
        guard FileManager.default.isExecutableFile(atPath: promtool) else {
            Issue.record("needs promtool at \(promtool) (apt package prometheus; `make check` installs it)")
            return
        }
        let file = agent.directory.appendingPathComponent("metrics.txt")
        try Data(text.utf8).write(to: file)
        let checked = try TestSupport.run("/bin/sh", ["-c", "\(promtool) check metrics < \(file.path)"])
        #expect(
            checked.status == 0 && checked.stdout.isEmpty && checked.stderr.isEmpty,
            "promtool: \(checked.stdout)\(checked.stderr)")
    }

    @Test func sigtermEndsEveryVMAndLeavesNothingPending() throws {
        let agent = try AgentProcess()
        defer { agent.removeFiles() }
        _ = try create(agent, #"{"name":"churn","image":"churn.elf","memory_mib":16}"#)
        _ = try create(agent, #"{"name":"spin","image":"spin-io.elf","command_line":"forever","memory_mib":16}"#)
        _ = try create(agent, #"{"name":"idle","image":"hello.elf","memory_mib":16,"start":false}"#)
        usleep(300_000)
        #expect(agent.terminate() == 0)
        #expect(agent.stderr.contains("every VM ended and recorded"))
        let check = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), ["db", "check", "--db", agent.database])
        #expect(check.status == 0)
        #expect(check.stdout.contains("(0 pending, 0 incomplete)"), "\(check.stdout)")
        let open = try TestSupport.run(
            "/usr/bin/sqlite3",
            [agent.database, "SELECT count(*) FROM vms WHERE ended_ns IS NULL OR final_state IS NULL"])
        #expect(open.stdout == "0\n")
        let mode = try FileManager.default.attributesOfItem(atPath: agent.database)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
    }

    static let routes: [(method: String, path: String, body: String?, mutating: Bool)] = [
        ("GET", "/v1/host", nil, false), ("GET", "/v1/vms", nil, false),
        (
            "POST", "/v1/vms",
            #"{"name":"auth","image":"spin-io.elf","command_line":"forever","memory_mib":16,"start":false}"#, true
        ),
        ("GET", "/v1/vms/1", nil, false), ("POST", "/v1/vms/1/start", nil, true),
        ("POST", "/v1/vms/1/pause", nil, true),
        ("POST", "/v1/vms/1/resume", nil, true), ("POST", "/v1/vms/1/stop", nil, true),
        ("GET", "/v1/vms/1/console", nil, false),
        ("GET", "/v1/vms/1/memory", nil, false), ("DELETE", "/v1/vms/1", nil, true),
        ("GET", "/v1/memory-faults", nil, false),
        ("GET", "/v1/conversions", nil, false), ("GET", "/v1/events", nil, false), ("GET", "/v1/policy", nil, false),
        ("PUT", "/v1/policy", "{}", true), ("POST", "/v1/policy/validate", "{}", false),
        ("GET", "/v1/policy/history", nil, false),
    ]

    @Test func authMatrixOnEveryRoute() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        #expect(
            try create(
                agent,
                #"{"name":"target","image":"spin-io.elf","command_line":"forever","memory_mib":16,"start":false}"#) == 1
        )
        for (index, route) in Self.routes.enumerated() {
            let headers = route.path == "/v1/policy" && route.method == "PUT" ? ["If-Match": "*"] : [:]
            let none = try agent.request(route.method, route.path, token: "", json: route.body, headers: headers)
            #expect(none.status == 401, "\(route.method) \(route.path) without a token")
            #expect(none.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            // Each wrong token from a network of its own: past 10 from one network they are throttled (RedTeamTests).
            let wrong = try agent.request(
                route.method, route.path, token: "not-a-valid-token-at-all", json: route.body, headers: headers,
                source: "127.0.\(100 + index).1")
            #expect(wrong.status == 401, "\(route.method) \(route.path) with a wrong token")
            let viewer = try agent.request(
                route.method, route.path, token: AgentProcess.readOnlyToken, json: route.body, headers: headers)
            if route.mutating {
                #expect(viewer.status == 403, "\(route.method) \(route.path) read-only")
            } else {
                #expect(
                    viewer.status == 200, "\(route.method) \(route.path) read-only: \(viewer.status) \(viewer.text)")
            }
        }
        // Admin: every route in order on VM 1, created by the POST.
        for route in Self.routes {
            let headers = route.path == "/v1/policy" && route.method == "PUT" ? ["If-Match": "*"] : [:]
            let admin = try agent.request(route.method, route.path, json: route.body, headers: headers)
            #expect(
                (200..<300).contains(admin.status),
                "\(route.method) \(route.path) as admin: \(admin.status) \(admin.text)")
        }
        #expect(try agent.request("GET", "/healthz", token: "").status == 200)
        #expect(
            try agent.request("GET", "/metrics", token: "").text.contains(
                "memgate_http_requests_total{method=\"GET\",route=\"/v1/host\",status=\"401\"} 2"))
        // The Unix socket needs no token; mutating requests are recorded with the peer's uid.
        let unix = try BlockingHTTPClient(unixPath: agent.socket)
        #expect(try unix.request("GET", "/v1/vms").status == 200)
        #expect(
            try unix.request(
                "POST", "/v1/policy/validate", headers: ["Content-Type": "application/json"], body: Array("{}".utf8)
            ).status == 200)
        // Admitted writes keep a row each; refused ones are counted (per second and address), never a row each.
        let audit = try TestSupport.run(
            "/usr/bin/sqlite3",
            [
                agent.database,
                "SELECT client, status FROM api_requests WHERE method = 'POST' AND path = '/v1/vms' ORDER BY id",
            ])
        #expect(audit.stdout == "admin|201\nadmin|201\n", "\(audit.stdout)")
        let metrics = try agent.request("GET", "/metrics", token: "").text
        let unauthenticated = 2 * Self.routes.count, forbidden = Self.routes.filter(\.mutating).count
        #expect(
            metrics.contains("memgate_api_refusals_total{kind=\"unauthenticated\"} \(unauthenticated)\n"), "\(metrics)")
        #expect(metrics.contains("memgate_api_refusals_total{kind=\"forbidden\"} \(forbidden)\n"))
        #expect(agent.terminate() == 0)
        let refusals = try TestSupport.run(
            "/usr/bin/sqlite3",
            [agent.database, "SELECT kind, sum(requests) FROM api_refusals GROUP BY kind ORDER BY kind"])
        #expect(refusals.stdout == "forbidden|\(forbidden)\nunauthenticated|\(unauthenticated)\n", "\(refusals.stdout)")
        let fromHere = try TestSupport.run(
            "/usr/bin/sqlite3",
            [
                agent.database,
                "SELECT sum(requests) FROM api_refusals WHERE peer = '127.0.0.1' AND kind = 'unauthenticated'",
            ])
        #expect(
            fromHere.stdout == "\(Self.routes.count)\n",
            "the requests without a token came from 127.0.0.1: \(fromHere.stdout)")
        #expect(
            try TestSupport.run(
                "/usr/bin/sqlite3", [agent.database, "SELECT count(*) FROM api_requests WHERE status IN (401, 403)"]
            ).stdout == "0\n")
    }

    @Test func policyETagFlowAndConcurrentPuts() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let first = try agent.request("GET", "/v1/policy")
        let etag = try #require(first.headers["etag"])
        #expect(try agent.request("PUT", "/v1/policy", json: "{}").status == 428)
        let invalid = try agent.request(
            "PUT", "/v1/policy", json: #"{"defaults":{"explicit":"maybe"}}"#, headers: ["If-Match": etag])
        #expect(invalid.status == 422 && invalid.text.contains("defaults.explicit"))
        let dryRun = AgentProcess.object(
            try agent.request("POST", "/v1/policy/validate", json: #"{"rules":[{"match":{"vm":"x"},"action":"deny"}]}"#)
        )
        #expect(dryRun["valid"] as? Bool == true && dryRun["changed"] as? Bool == true)
        #expect(
            try agent.request("GET", "/v1/policy").headers["etag"] == etag,
            "invalid documents and dry runs change nothing")

        // Two writers with the same If-Match: exactly one wins, the other gets 412.
        let documents = [#"{"defaults":{"explicit":"deny"}}"#, #"{"defaults":{"implicit":"deny"}}"#]
        let statuses = ConcurrentResults()
        let group = DispatchGroup()
        for document in documents {
            group.enter()
            Thread {
                let status =
                    (try? agent.request("PUT", "/v1/policy", json: document, headers: ["If-Match": etag]).status) ?? -1
                statuses.append(status)
                group.leave()
            }.start()
        }
        group.wait()
        #expect(statuses.values.sorted() == [200, 412])
        let now = try agent.request("GET", "/v1/policy")
        #expect(now.headers["etag"] != etag)
        #expect(documents.contains(now.text))
        let stale = try agent.request("PUT", "/v1/policy", json: "{}", headers: ["If-Match": etag])
        #expect(stale.status == 412 && stale.headers["etag"] == now.headers["etag"])
        let same = AgentProcess.object(
            try agent.request("PUT", "/v1/policy", json: now.text, headers: ["If-Match": now.headers["etag"] ?? ""]))
        #expect(same["changed"] as? Bool == false)
        let history = AgentProcess.object(try agent.request("GET", "/v1/policy/history"))
        let entries = history["entries"] as? [[String: Any]] ?? []
        #expect(entries.count == 2)
        #expect(entries.first?["applied_by"] as? String == "api: admin")
    }

    @Test func eventsPulledInPagesWhileAGuestConvertsAndAcrossAPrune() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let churn = try create(agent, #"{"name":"churn","image":"churn.elf","command_line":"1500","memory_mib":16}"#)
        var seen: [Int] = []
        var after = 0
        func pull() throws -> Int {
            let page = AgentProcess.object(try agent.request("GET", "/v1/events?after=\(after)&limit=97"))
            let events = page["events"] as? [[String: Any]] ?? []
            for event in events {
                let conversion = event["conversion"] as? [String: Any]
                #expect(conversion?["decision"] as? String != "pending", "events are final")
            }
            seen += events.compactMap { $0["event_id"] as? Int }
            after = page["next_after"] as? Int ?? after
            return events.count
        }
        var running = true
        while running {
            _ = try pull()
            running = AgentProcess.object(try agent.request("GET", "/v1/vms/\(churn)"))["state"] as? String == "running"
        }
        while try pull() > 0 {}
        #expect(seen.count == 1500)
        #expect(seen == (try eventIDs(agent.database)), "no gaps, no duplicates, in order")

        // Prune everything (the newest rows included), then convert again: ids continue, none is reused.
        let prune = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), ["db", "prune", "--db", agent.database, "--older-than", "0s"])
        #expect(prune.status == 0, "\(prune.stderr)")
        let again = try create(agent, #"{"name":"churn2","image":"churn.elf","command_line":"10","memory_mib":16}"#)
        _ = try agent.waitForEnd(again)
        while try pull() > 0 {}
        #expect(seen.count == 1510)
        let newest = try eventIDs(agent.database)
        #expect(Array(seen.suffix(10)) == newest && newest.count == 10 && newest[0] > seen[1499])
    }

    /// The fault and conversion ids in the store, in order.
    func eventIDs(_ database: String) throws -> [Int] {
        try SQLiteConnection(path: database, readOnly: true)
            .query("SELECT event_id FROM memory_faults UNION ALL SELECT event_id FROM conversions ORDER BY 1")
            .compactMap { row -> Int? in if case .integer(let id) = row[0] { Int(id) } else { nil } }
    }
}

/// Collects values from several threads.
final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Int] = []
    func append(_ value: Int) { lock.withLock { stored.append(value) } }
    var values: [Int] { lock.withLock { stored } }
}

/// CLI values out of range get a message naming the flag, never a trap.
struct CLIRangeTests {
    @Test(arguments: [
        (["run", "x.elf", "--timeout", "nan"], "--timeout"),
        (["run", "x.elf", "--timeout", "1e17"], "--timeout"),
        (["run", "x.elf", "--timeout", "-1"], "--timeout"),
        (["run", "x.elf", "--memory-mib", "17592186044416"], "--memory-mib"),
        (["run", "x.elf", "--vcpus", "4000000000"], "--vcpus"),
        (["serve", "--listen", "127.0.0.1:99999"], "--listen"),
        (["serve", "--listen", "example.com:80"], "--listen"),
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--max-connections", "1000000"], "--max-connections"),
        (["serve", "--listen", "none"], "--unix"),
        (["db", "prune", "--older-than", "7 days"], "--older-than"),
        (["run", "x.elf", "--max-runs", "0"], "--max-runs"),
        (["run", "x.elf", "--max-runs", "5000"], "--max-runs"),
        (["run", "x.elf", "--alias-mechanism", "mprotect"], "--alias-mechanism"),
        (["serve", "--alias-mechanism", "slots"], "--alias-mechanism"),
        (["serve", "--max-vms", "0"], "--max-vms"),
        (["serve", "--body-timeout", "0"], "--body-timeout"),
        (["serve", "--max-connections-per-peer", "0"], "--max-connections-per-peer"),
    ])
    func refusedWithTheFlagNamed(arguments: [String], flag: String) throws {
        let result = try TestSupport.run(try TestSupport.binaryPath("memgate-agent"), arguments)
        #expect(result.status == 2, "a usage error exits 2, as memgatectl's do: \(arguments)")
        #expect(result.stderr.contains(flag), "\(arguments): \(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test func aTokenFileOthersCanReadIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-open-tokens-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("a admin 0123456789abcdef0123\n".utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let result = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"),
            ["serve", "--listen", "127.0.0.1:0", "--no-record", "--token-file", path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("chmod 600"))
    }
}

/// The agent under a hostile environment: too few file descriptors.
struct ServeEnvironmentTests {
    @Test func outOfFileDescriptorsNeitherSpinsNorStopsServing() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-nofile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out").path
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        // 48 descriptors: the agent starts, then runs out after a few dozen connections.
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        agent.arguments = [
            "--nofile=48:48", try TestSupport.binaryPath("memgate-agent"), "serve", "--listen", "127.0.0.1:0",
            "--no-record",
        ]
        agent.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        defer {
            agent.terminate()
            agent.waitUntilExit()
        }
        var port: UInt16 = 0
        for _ in 0..<300 where port == 0 {
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if let range = text.range(of: "127.0.0.1:") {
                port = UInt16(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
            }
            usleep(20_000)
        }
        #expect(port != 0)
        var clients: [BlockingHTTPClient] = []
        for _ in 0..<80 {
            if let client = try? BlockingHTTPClient(port: port, timeoutMilliseconds: 2000) { clients.append(client) }
        }
        usleep(300_000)
        // Out of descriptors with connections pending: the agent must be waiting, not spinning.
        let stat = try String(contentsOfFile: "/proc/\(agent.processIdentifier)/stat", encoding: .utf8).split(
            separator: " ")
        let before = (Int(stat[13]) ?? 0) + (Int(stat[14]) ?? 0)
        usleep(1_000_000)
        let after = try String(contentsOfFile: "/proc/\(agent.processIdentifier)/stat", encoding: .utf8).split(
            separator: " ")
        let ticks = (Int(after[13]) ?? 0) + (Int(after[14]) ?? 0) - before
        #expect(ticks < 30, "the agent used \(ticks) clock ticks in one idle second while out of descriptors")
        clients.removeAll()
        // Once connections close it accepts again.
        var healthy = false
        for _ in 0..<50 where !healthy {
            healthy = (try? BlockingHTTPClient(port: port).request("GET", "/healthz").status) == 200
            if !healthy { usleep(100_000) }
        }
        #expect(healthy)
    }
}
