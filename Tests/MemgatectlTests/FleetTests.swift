import Foundation
import HTTPServer
import Logging
import TestSupport
import Testing

/// Answers every request after `delay` seconds: a host too slow for the controller's timeout.
/// Answers only when released (or after `delay`): a host that hangs for as long as a test needs.
final class SlowHandler: HTTPHandler {
    let delay: Double
    private let gate = DispatchSemaphore(value: 0)
    init(delay: Double) { self.delay = delay }
    func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse? { nil }
    func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        _ = gate.wait(timeout: .now() + delay)
        return HTTPResponse(status: 200, contentType: "application/json", body: Array("{}".utf8))
    }
    /// Lets the waiting requests answer at once (before the server stops).
    func release() { for _ in 0..<64 { gate.signal() } }
}

/// memgatectl against real agent processes over real libcurl.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct FleetTests {
    @Test func partialFailureIsReportedPerHost() throws {
        let agents = try (0..<3).map { _ in try AgentProcess() }
        let wrongToken = try AgentProcess(adminToken: "another-admin-token-0123456789")
        defer {
            for agent in agents + [wrongToken] {
                agent.terminate()
                agent.removeFiles()
            }
        }
        // A host that hangs far longer than the fan-out may wait for it: only the --timeout can end its request.
        let slowHandler = SlowHandler(delay: 60)
        let slow = try HTTPServer(
            configuration: HTTPServerConfiguration(tcp: ("127.0.0.1", 0)), handler: slowHandler,
            logger: Logger(label: "slow") { _ in SwiftLogNoOpLogHandler() })
        defer {
            slowHandler.release()
            slow.stop()
        }
        let down = try RefusingPort()
        let hosts = try hostsFile([
            "\(agents[0].url) a1 zone=a", "\(agents[1].url) a2 zone=a", "\(agents[2].url) b1 zone=b",
            "http://127.0.0.1:\(down.port) down zone=b", "\(wrongToken.url) wrong zone=c",
            "http://127.0.0.1:\(slow.tcpPort ?? 0) slow zone=c",
        ])
        for (index, agent) in agents.enumerated() {
            #expect(
                try agent.request(
                    "POST", "/v1/vms", json: #"{"name":"vm\#(index)","image":"hello.elf","memory_mib":16}"#
                ).status == 201)
        }
        let started = Date()
        let result = try ctl(["hosts", "--hosts", hosts, "--timeout", "1", "--retries", "0", "--json"])
        #expect(
            Date().timeIntervalSince(started) < 30,
            "the hung host (60 s) must not hold up the fan-out past its 1 s timeout")
        #expect(result.status == 1)
        let rows = jsonObject(result.stdout)["hosts"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["host"] as? String } == ["a1", "a2", "b1", "down", "wrong", "slow"])
        #expect(rows.map { $0["reachable"] as? Bool } == [true, true, true, false, false, false])
        #expect((rows[3]["error"] as? String)?.hasPrefix("unreachable") == true)
        #expect((rows[4]["error"] as? String)?.hasPrefix("unauthorized") == true)
        #expect((rows[5]["error"] as? String)?.hasPrefix("timeout") == true)
        #expect(rows[0]["vms"] as? Int == 1 && rows[0]["version"] as? String != nil)

        let vms = try ctl(["vms", "--hosts", hosts, "--select", "zone=a", "--json"])
        #expect(vms.status == 0)
        let items = jsonObject(vms.stdout)["items"] as? [[String: Any]] ?? []
        #expect(Set(items.compactMap { $0["host"] as? String }) == ["a1", "a2"])
        #expect(items.allSatisfy { $0["name"] != nil && $0["state"] != nil })

        let table = try ctl(["vms", "--hosts", hosts, "--timeout", "1", "--retries", "0"])
        #expect(table.status == 1)
        #expect(table.stdout.hasPrefix("HOST"))
        #expect(table.stderr.contains("down: unreachable") && table.stderr.contains("wrong: 401"))
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try ctl(["hosts"]).status == 2)
        #expect(try ctl(["hosts", "--host", "http://127.0.0.1:1", "--concurrency", "0"]).status == 2)
        #expect(try ctl(["hosts", "--host", "ftp://x"]).status == 2)
        let unknown = try ctl(["vm", "do", "stop", "nowhere", "1", "--host", "http://127.0.0.1:1"])
        #expect(unknown.status == 2 && unknown.stderr.contains("no host named nowhere"))
        #expect(try ctl(["hosts", "--host", "http://127.0.0.1:1", "--select", "zone=x"]).status == 2)
    }

    @Test func policyPushAcrossTheFleet() throws {
        let agents = try (0..<3).map { _ in try AgentProcess() }
        defer {
            for agent in agents {
                agent.terminate()
                agent.removeFiles()
            }
        }
        let hosts = try hostsFile(agents.enumerated().map { "\($1.url) h\($0)" })
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgatectl-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func file(_ name: String, _ text: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        func words(_ result: TestSupport.ProcessResult) -> [String] {
            (jsonObject(result.stdout)["hosts"] as? [[String: Any]] ?? []).compactMap { $0["result"] as? String }
        }
        let original = try #require(agents[0].request("GET", "/v1/policy").headers["etag"])
        let deny = try file("deny.json", #"{"defaults":{"implicit":"deny"}}"#)

        let diff = try ctl(["policy", "diff", deny, "--hosts", hosts])
        #expect(diff.status == 1, "diff exits 1 on differences, as diff(1)")
        // One diff for the one document every host has, naming them.
        #expect(
            diff.stdout.contains("== 3 hosts (h0, h1, h2): changes") && diff.stdout.contains("+ "), "\(diff.stdout)")
        #expect(diff.stdout.components(separatedBy: "== ").count == 2, "one group, not one diff per host")
        let pushed = try ctl(["policy", "push", deny, "--hosts", hosts, "--json"])
        #expect(pushed.status == 0)
        #expect(words(pushed) == ["applied", "applied", "applied"])
        let again = try ctl(["policy", "push", deny, "--hosts", hosts, "--json"])
        #expect(again.status == 0 && words(again) == ["unchanged", "unchanged", "unchanged"])

        let versions = try agents.map { try $0.request("GET", "/v1/policy").headers["etag"] }
        let invalid = try file("invalid.json", #"{"defaults":{"implicit":"sometimes"}}"#)
        let rejected = try ctl(["policy", "push", invalid, "--hosts", hosts, "--json"])
        // Invalid locally: said once, and no host is asked.
        #expect(
            rejected.status == 1 && words(rejected).isEmpty && rejected.stderr.split(separator: "\n").count == 1,
            "\(rejected.stderr)")
        #expect(try agents.map { try $0.request("GET", "/v1/policy").headers["etag"] } == versions, "nothing changed")

        // Someone changes h1 behind our back; a push that expects the reviewed version reports the conflict there only.
        let reviewed = versions[0]?.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) ?? ""
        #expect(
            try agents[1].request(
                "PUT", "/v1/policy", json: #"{"defaults":{"explicit":"deny"}}"#, headers: ["If-Match": "*"]
            ).status == 200)
        let next = try file("next.json", #"{"defaults":{"implicit":"deny","discard":false}}"#)
        let conflicted = try ctl(["policy", "push", next, "--hosts", hosts, "--expect-version", reviewed, "--json"])
        #expect(conflicted.status == 1)
        #expect(words(conflicted) == ["applied", "conflict", "applied"])
        #expect(
            try agents[1].request("GET", "/v1/policy").text == #"{"defaults":{"explicit":"deny"}}"#,
            "h1 keeps its own policy")
        #expect(original != versions[0])

        // h1 is off the version the other two run: drift, flagged, exit 1.
        let shown = try ctl(["policy", "show", "--hosts", hosts, "--json"])
        #expect(shown.status == 1)
        let rows = jsonObject(shown.stdout)["hosts"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["drift"] as? String } == [nil, "drift", nil])
        let table = try ctl(["policy", "show", "--hosts", hosts])
        #expect(table.stdout.contains("DRIFT") && table.stderr.contains("marked DRIFT"))
        let hostsTable = try ctl(["hosts", "--hosts", hosts, "-o", "jsonpath={.hosts[*].policy_drift}"])
        #expect(hostsTable.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "drift", "\(hostsTable.stdout)")
        let h1 = try #require(try agents[1].request("GET", "/v1/policy").headers["etag"]).trimmingCharacters(
            in: CharacterSet(charactersIn: "\""))
        let expected = try ctl([
            "policy", "show", "--hosts", hosts, "--json", "--expect-version", String(h1.prefix(12)),
        ])
        #expect(
            (jsonObject(expected.stdout)["hosts"] as? [[String: Any]] ?? []).map { $0["drift"] as? String } == [
                "drift", nil, "drift",
            ])
        let validated = try ctl(["policy", "validate", invalid, "--hosts", hosts])
        #expect(validated.status == 1 && validated.stderr.contains("defaults.implicit"))
    }

    @Test func vmLifecycleMemoryAndFollow() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let hosts = try hostsFile(["\(agent.url) one"])
        let tokenFile = agent.directory.appendingPathComponent("ctl-token").path
        try Data(AgentProcess.adminToken.utf8).write(to: URL(fileURLWithPath: tokenFile))
        let follower = try RunningProcess(
            try TestSupport.binaryPath("memgatectl"),
            ["events", "--follow", "--from-start", "--json", "--hosts", hosts, "--token-file", tokenFile])
        defer {
            follower.kill(SIGKILL)
            follower.wait()
        }
        let created = try ctl([
            "vm", "create", "one", "--name", "walker", "--image", "implicit.elf", "--memory-mib", "32", "--hosts",
            hosts, "--json",
        ])
        #expect(created.status == 0)
        let id = jsonObject(created.stdout)["id"] as? Int ?? 0
        #expect(id == 1)
        for _ in 0..<1200 where !follower.stdout.contains(#""kind":"vm_ended""#) { usleep(50_000) }
        let lines = follower.stdout.split(separator: "\n").map { jsonObject(String($0)) }
        #expect(lines.allSatisfy { $0["host"] as? String == "one" })
        #expect(
            lines.map { $0["kind"] as? String } == [
                "policy_applied", "vm_created", "vm_started", "memory_fault", "conversion",
                "memory_fault", "conversion", "vm_ended",
            ])

        let memory = try ctl(["memory", "one", "1", "--hosts", hosts, "--width", "32"])
        #expect(memory.status == 0)
        #expect(memory.stdout.contains("[##====") && memory.stdout.contains("private 30.0 MiB (100.0%)"))
        let picture = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-map-\(UUID().uuidString).svg")
        defer { try? FileManager.default.removeItem(at: picture) }
        let drawn = try ctl(["memory", "one", "1", "--hosts", hosts, "--svg", picture.path])
        #expect(drawn.status == 0, "\(drawn.stderr)")
        let svg = (try? String(contentsOf: picture, encoding: .utf8)) ?? ""
        #expect(
            svg.hasPrefix("<svg") && svg.contains("private: 30.0 MiB (100.0% of data RAM)")
                && svg.contains("data-bytes=\"31457280\""),
            "\(svg.prefix(300))")
        // Zoom: by name, in hex, the bar and the SVG both; each run in view listed with its addresses.
        let zoomed = try ctl([
            "memory", "one", "walker", "--from", "0x200000", "--to", "0x300000", "--width", "16", "--hosts", hosts,
            "--svg", picture.path,
        ])
        #expect(zoomed.status == 0, "\(zoomed.stderr)")
        #expect(
            zoomed.stdout.contains("1.0 MiB shown of 32.0 MiB of guest RAM, 0x200000 – 0x300000"), "\(zoomed.stdout)")
        #expect(zoomed.stdout.contains("  0x200000 – 0x300000  private  1.0 MiB"), "\(zoomed.stdout)")
        #expect(((try? String(contentsOf: picture, encoding: .utf8)) ?? "").contains("0x200000 – 0x300000"))
        let backwards = try ctl(["memory", "one", "walker", "--from", "0x300000", "--to", "0x200000", "--hosts", hosts])
        #expect(backwards.status == 2 && backwards.stderr.contains("--from must be below --to"), "\(backwards.stderr)")
        let typo = try ctl(["memory", "one", "walker", "--from", "0xzz", "--hosts", hosts])
        #expect(typo.status == 2 && typo.stderr.contains("hex with 0x (0x400000) or decimal"), "\(typo.stderr)")
        let unwritable = try ctl(["memory", "one", "1", "--hosts", hosts, "--svg", "/nonexistent-dir/map.svg"])
        #expect(unwritable.status == 1 && unwritable.stderr.contains("cannot write /nonexistent-dir/map.svg"))
        #expect(try ctl(["vm", "do", "delete", "one", "1", "--hosts", hosts]).status == 0)
        let missing = try ctl(["vm", "do", "stop", "one", "1", "--hosts", hosts])
        #expect(missing.status == 1 && missing.stderr.contains("404"))
    }

    @Test func tlsThroughNginx() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let dir = agent.directory.appendingPathComponent("tls").path
        let port = closedPort()
        let setup = try shell(
            """
            set -e; mkdir -p \(dir)/n; cd \(dir)
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=memgate-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
            cat > n/nginx.conf <<CONF
            worker_processes 1; daemon off; pid \(dir)/n/nginx.pid; error_log \(dir)/n/error.log error;
            events { worker_connections 64; }
            http { access_log off; client_body_temp_path \(dir)/n/b; proxy_temp_path \(dir)/n/p; fastcgi_temp_path \(dir)/n/f;
                   uwsgi_temp_path \(dir)/n/u; scgi_temp_path \(dir)/n/s;
              server { listen 127.0.0.1:\(port) ssl; ssl_certificate \(dir)/server.pem; ssl_certificate_key \(dir)/server.key;
                       location / { proxy_pass http://127.0.0.1:\(agent.port); proxy_set_header Authorization \\$http_authorization; } } }
            CONF
            """)
        #expect(setup.status == 0, "\(setup.stderr)")
        let nginx = try RunningProcess("/usr/sbin/nginx", ["-c", "\(dir)/n/nginx.conf", "-p", "\(dir)/n"])
        defer {
            nginx.kill(SIGQUIT)
            nginx.wait()
        }
        for _ in 0..<600 where (try? shell("exec 3<>/dev/tcp/127.0.0.1/\(port)").status) != 0 { usleep(50_000) }
        let secure = try ctl(["hosts", "--host", "https://127.0.0.1:\(port)", "--ca-file", "\(dir)/ca.pem", "--json"])
        #expect(secure.status == 0, "\(secure.stdout) \(secure.stderr)")
        #expect((jsonObject(secure.stdout)["hosts"] as? [[String: Any]])?.first?["reachable"] as? Bool == true)
        let untrusted = try ctl(["hosts", "--host", "https://127.0.0.1:\(port)", "--retries", "0", "--json"])
        #expect(untrusted.status == 1)
        #expect(
            ((jsonObject(untrusted.stdout)["hosts"] as? [[String: Any]])?.first?["error"] as? String)?.hasPrefix("tls")
                == true)
    }

    @Test(.enabled(if: isRoot, "needs root to create a network namespace and a veth pair; not root here"))
    func anAgentInItsOwnNetworkNamespace() throws {
        let namespace = "memgate-t\(getpid() % 100_000)"
        let (hostSide, nsSide) = ("mgh\(getpid() % 100_000)", "mgn\(getpid() % 100_000)")
        let octet = 1 + Int(getpid() % 250)
        let setup = try shell(
            """
            set -e
            ip netns add \(namespace)
            ip link add \(hostSide) type veth peer name \(nsSide)
            ip link set \(nsSide) netns \(namespace)
            ip addr add 10.213.\(octet).1/30 dev \(hostSide); ip link set \(hostSide) up
            ip netns exec \(namespace) ip addr add 10.213.\(octet).2/30 dev \(nsSide)
            ip netns exec \(namespace) ip link set \(nsSide) up; ip netns exec \(namespace) ip link set lo up
            """)
        defer { _ = try? shell("ip netns del \(namespace); ip link del \(hostSide) 2>/dev/null; true") }
        #expect(setup.status == 0, "\(setup.stderr)")
        let agent = try AgentProcess(
            listen: "10.213.\(octet).2:0", launcher: ["/usr/sbin/ip", "netns", "exec", namespace])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let result = try ctl(["hosts", "--host", "http://10.213.\(octet).2:\(agent.port)", "--json"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect((jsonObject(result.stdout)["hosts"] as? [[String: Any]])?.first?["reachable"] as? Bool == true)
    }
}
