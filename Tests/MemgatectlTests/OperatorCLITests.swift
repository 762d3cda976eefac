import APITypes
import Foundation
import TestSupport
import Testing

/// memgatectl as an operator uses it: bounded by a deadline, with kubectl's habits,
/// against real agents.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct OperatorCLITests {
    /// A stopped agent accepts connections (the kernel does) and answers nothing: the
    /// command still ends, bounded by the host's deadline, and says so on its row.
    @Test func aHungHostCostsAtMostTheDeadline() throws {
        let live = try AgentProcess()
        let hung = try AgentProcess()
        defer {
            kill(hung.pid, SIGCONT)
            for agent in [live, hung] {
                agent.terminate()
                agent.removeFiles()
            }
        }
        kill(hung.pid, SIGSTOP)
        let hosts = try hostsFile(["\(live.url) live", "\(hung.url) hung"])
        let started = Date()
        // Without --deadline these settings would take 3 attempts × 15 s.
        let result = try ctl([
            "hosts", "--hosts", hosts, "--deadline", "2", "--retries", "2", "--timeout", "15", "--json",
        ])
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.status == 1)
        // The guarantee is "about the deadline, not 3 × 15 s": the margin covers process start-up on a loaded machine.
        #expect(elapsed < 15, "the command took \(elapsed) s with a 2 s deadline")
        let rows = jsonObject(result.stdout)["hosts"] as? [[String: Any]] ?? []
        #expect(rows.count == 2)
        #expect(rows.first?["reachable"] as? Bool == true && rows.first?["latency_ms"] is Double)
        #expect(rows.last?["latency_ms"] == nil, "no latency for a host that did not answer")
        #expect((rows.last?["error"] as? String)?.contains("2.0 s deadline") == true, "\(rows.last ?? [:])")
        let table = try ctl(["hosts", "--hosts", hosts, "--deadline", "0.5"])
        let hungRow = table.stdout.split(separator: "\n").first { $0.hasPrefix("hung") } ?? ""
        #expect(hungRow.hasSuffix("-"), "the latency column says - for the hung host: \(hungRow)")
    }

    @Test func anOperatorsHabits() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let hosts = try hostsFile(["\(agent.url) one"])
        let ctlBinary = try TestSupport.binaryPath("memgatectl")
        for binary in [ctlBinary, try TestSupport.binaryPath("memgate-agent")] {
            let version = try TestSupport.run(binary, ["--version"])
            #expect(version.status == 0 && version.stdout == BuildInfo.version + "\n")
        }
        // A subcommand that does not exist is named as such, with the nearest one.
        let list = try ctl(["vm", "list", "--hosts", hosts])
        #expect(
            list.status == 2 && list.stderr.contains("unknown subcommand 'list' for 'memgatectl vm'"), "\(list.stderr)")
        #expect(try ctl(["polcy", "show"]).stderr.contains("did you mean 'policy'?"))

        // A URL is a host, inventory or not.
        let created = try ctl([
            "vm", "create", agent.url, "--name", "talker", "--image", "hello.elf", "--memory-mib", "16", "--json",
        ])
        #expect(created.status == 0, "\(created.stderr)")
        let id = jsonObject(created.stdout)["id"] as? Int ?? 0
        _ = try agent.waitForEnd(id)
        // MEMGATE_HOSTS may name a hosts file.
        let got = try ctl(["vm", "get", "one", "\(id)"], environment: ["MEMGATE_HOSTS": hosts])
        #expect(
            got.status == 0 && got.stdout.contains("ended") && got.stdout.contains("exit 0"),
            "\(got.stdout)\(got.stderr)")
        let console = try ctl(["vm", "console", "one", "\(id)", "-f"], environment: ["MEMGATE_HOSTS": hosts])
        #expect(console.status == 0 && console.stdout.contains("hello"), "\(console.stdout)")
        let wide = try ctl(["vms", "--hosts", hosts, "-o", "wide"])
        #expect(wide.stdout.contains("ENDED") && wide.stdout.contains("LABELS") && wide.stdout.contains("exit 0"))
        let names = try ctl(["vms", "--hosts", hosts, "-o", "jsonpath={.items[*].name}"])
        #expect(names.stdout == "talker\n")
        #expect(try ctl(["vms", "--hosts", hosts, "-o", "jsonpath={.items["]).status == 2)
        #expect(!(try ctl(["hosts", "--hosts", hosts, "--json"]).stdout.contains(#"\/"#)), "slashes are not escaped")

        // A running VM: delete needs --force, which stops it first.
        let spinner = try ctl([
            "vm", "create", "one", "--name", "spinner", "--image", "spin-io.elf", "--command-line", "forever",
            "--memory-mib", "16", "--hosts", hosts, "--json",
        ])
        let spinnerID = jsonObject(spinner.stdout)["id"] as? Int ?? 0
        #expect(try ctl(["vm", "do", "delete", "one", "\(spinnerID)", "--hosts", hosts]).status == 1)
        let forced = try ctl(["vm", "do", "delete", "one", "\(spinnerID)", "--force", "--hosts", hosts])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try agent.request("GET", "/v1/vms/\(spinnerID)").status == 404)

        // Times as people write them; and the newest rows.
        let converter = try agent.request(
            "POST", "/v1/vms", json: #"{"name":"c","image":"churn.elf","command_line":"60","memory_mib":16}"#)
        _ = try agent.waitForEnd(AgentProcess.object(converter)["id"] as? Int ?? 0)
        let recent = try ctl(["conversions", "--hosts", hosts, "--since", "10m", "--json"])
        #expect((jsonObject(recent.stdout)["items"] as? [Any])?.count == 60)
        #expect(
            (jsonObject(
                try ctl(["conversions", "--hosts", hosts, "--since", "2099-01-01T00:00:00Z", "--json"]).stdout)["items"]
                as? [Any])?.isEmpty == true)
        #expect(try ctl(["conversions", "--hosts", hosts, "--since", "yesterday"]).status == 2)
        let cut = try ctl(["conversions", "--hosts", hosts, "--limit", "10", "--json"])
        #expect(cut.stderr.contains("more rows match: continue with --cursor mgc1."), "\(cut.stderr)")
        let tail = try ctl(["conversions", "--hosts", hosts, "--tail", "5", "--json"])
        let ids = (jsonObject(tail.stdout)["items"] as? [[String: Any]] ?? []).compactMap { $0["event_id"] as? Int }
        let all =
            (jsonObject(try ctl(["conversions", "--hosts", hosts, "--limit", "1000", "--json"]).stdout)["items"]
            as? [[String: Any]] ?? [])
            .compactMap { $0["event_id"] as? Int }
        #expect(ids == Array(all.suffix(5)), "the five newest, oldest first")
    }

    @Test func policyEdgesSayWhatHappened() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let hosts = try hostsFile(["\(agent.url) one"])
        let directory = agent.directory
        let sloppy = directory.appendingPathComponent("sloppy.json")
        try Data(#"{"defaults":{"explicit":"deny"},}"#.utf8).write(to: sloppy)
        let validated = try ctl(["policy", "validate", sloppy.path, "--hosts", hosts])
        #expect(
            validated.status == 1 && validated.stderr.contains("not valid JSON")
                && validated.stderr.contains("trailing commas"), "\(validated.stderr)")
        // Where, as an editor shows it; and a push of it is one local error, not one per host.
        let multiline = directory.appendingPathComponent("multiline.json")
        try Data("{\n  \"name\": \"x\",\n  \"defaults\": {\"explicit\": deny}\n}\n".utf8).write(to: multiline)
        let twoHosts = try hostsFile(["\(agent.url) one", "\(agent.url) two"])
        let pushed = try ctl(["policy", "push", multiline.path, "--hosts", twoHosts])
        #expect(pushed.status == 1 && pushed.stderr.contains("line 3, column 28"), "\(pushed.stderr)")
        #expect(
            pushed.stderr.components(separatedBy: "not valid JSON").count == 2 && pushed.stdout.isEmpty,
            "\(pushed.stdout) \(pushed.stderr)")
        let good = directory.appendingPathComponent("good.json")
        try Data(#"{"name":"deny-explicit","defaults":{"explicit":"deny"}}"#.utf8).write(to: good)
        let forbidden = try ctl(
            ["policy", "push", good.path, "--hosts", hosts, "--json"], token: AgentProcess.readOnlyToken)
        #expect(forbidden.status == 1)
        #expect(
            (jsonObject(forbidden.stdout)["hosts"] as? [[String: Any]])?.first?["result"] as? String == "forbidden",
            "\(forbidden.stdout)")
        #expect(try ctl(["policy", "push", good.path, "--hosts", hosts]).status == 0)
        let shown = try ctl(["policy", "show", "--hosts", hosts])
        #expect(shown.status == 0 && shown.stdout.contains("deny-explicit") && shown.stdout.contains("in force"))
        #expect(try ctl(["hosts", "--hosts", hosts]).stdout.contains("(deny-explicit)"))
        #expect(try ctl(["policy", "diff", good.path, "--hosts", hosts]).status == 0, "no differences: exit 0")
    }

    /// A config file with contexts stands in for --hosts and --token-file.
    @Test func aContextNamesTheFleet() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let hosts = try hostsFile(["\(agent.url) one env=lab"])
        let token = agent.directory.appendingPathComponent("viewer.token")
        try Data(AgentProcess.readOnlyToken.utf8).write(to: token)
        let config = agent.directory.appendingPathComponent("config.json")
        try Data(
            #"{"current_context":"lab","contexts":{"lab":{"hosts":"\#(hosts)","token_file":"\#(token.path)","select":["env=lab"]},"empty":{}}}"#
                .utf8
        )
        .write(to: config)
        let ctlBinary = try TestSupport.binaryPath("memgatectl")
        let environment: [String: String?] = [
            "MEMGATE_CONFIG": config.path, "MEMGATE_HOSTS": nil, "MEMGATE_TOKEN": nil,
        ]
        let listed = try TestSupport.run(ctlBinary, ["hosts", "--json"], environment: environment)
        #expect(
            listed.status == 0
                && (jsonObject(listed.stdout)["hosts"] as? [[String: Any]])?.first?["host"] as? String == "one",
            "\(listed.stderr)")
        let empty = try TestSupport.run(ctlBinary, ["hosts", "--context", "empty"], environment: environment)
        #expect(empty.status == 2 && empty.stderr.contains("no hosts"))
        let unknown = try TestSupport.run(ctlBinary, ["hosts", "--context", "prod"], environment: environment)
        #expect(unknown.status == 2 && unknown.stderr.contains("no context prod"))
    }
}
