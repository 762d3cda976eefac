import Foundation
import TestSupport
import Testing

/// Issue 31 (part): output and flags as kubectl users type them, through the real binary against a real agent.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct OutputHabitsTests {
    /// YAML read back by a real YAML parser (PyYAML) as JSON, with sorted keys.
    func yamlAsJSON(_ text: String) throws -> String {
        let script = "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin.read()), sort_keys=True))"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-yaml-\(UUID().uuidString)")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        return try TestSupport.run("/bin/sh", ["-c", "python3 -c '\(script)' < \(file.path)"]).stdout
    }

    /// Whether two JSON texts hold the same document (key order and spacing aside).
    func sameDocument(_ a: String, _ b: String) throws -> Bool {
        let left = try JSONSerialization.jsonObject(with: Data(a.utf8)) as? NSDictionary
        let right = try JSONSerialization.jsonObject(with: Data(b.utf8)) as? NSDictionary
        return left != nil && left == right
    }

    @Test func outputFormatsAndFlagsAsOperatorsTypeThem() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        #expect(
            try agent.request(
                "POST", "/v1/vms",
                json: #"{"name":"reader","image":"implicit.elf","memory_mib":32,"labels":{"tier":"a: b"}}"#
            ).status == 201)
        _ = try agent.waitForEnd(1, seconds: 60)
        let hosts = try hostsFile(["\(agent.url) host-a"])

        // -ojson attached, as kubectl takes it, and -ojsonpath=.
        let attached = try ctl(["vms", "--hosts", hosts, "-ojson"])
        #expect(
            attached.status == 0 && (jsonObject(attached.stdout)["items"] as? [Any])?.count == 1, "\(attached.stderr)")
        let path = try ctl(["vms", "--hosts", hosts, "-ojsonpath={.items[*].name}"])
        #expect(path.status == 0 && path.stdout == "reader\n", "\(path.stdout) \(path.stderr)")
        // -o yaml is the JSON shape, as a YAML parser reads it back.
        let yaml = try ctl(["vms", "--hosts", hosts, "-o", "yaml"])
        #expect(yaml.status == 0 && yaml.stdout.contains("items:") && yaml.stdout.contains("- "), "\(yaml.stdout)")
        let json = try ctl(["vms", "--hosts", hosts, "-o", "json"])
        let readBack = try yamlAsJSON(yaml.stdout)
        #expect(try sameDocument(readBack, json.stdout), "YAML read back: \(readBack)\nJSON: \(json.stdout)")
        // -o name: HOST/NAME per item.
        let names = try ctl(["vms", "--hosts", hosts, "-oname"])
        #expect(names.status == 0 && names.stdout == "host-a/reader\n", "\(names.stdout) \(names.stderr)")

        // Every duration flag takes the same forms; a bad one names them.
        #expect(
            try ctl(["hosts", "--hosts", hosts, "--deadline", "5s", "--timeout", "2000ms", "--connect-timeout", "1"])
                .status == 0)
        let bad = try ctl(["hosts", "--hosts", hosts, "--deadline", "5x"])
        #expect(bad.status == 2 && bad.stderr.contains("500ms, 5s, 2m, 1h"), "\(bad.stderr)")
        let bake = try ctl([
            "policy", "rollout", try policyFile(#"{"name":"n"}"#), "--hosts", hosts, "--dry-run", "--bake", "2m",
        ])
        #expect(bake.status == 0, "--bake 2m: \(bake.stderr)")
        // A time without a unit is refused, with the forms that are taken.
        let since = try ctl(["conversions", "--hosts", hosts, "--since", "10"])
        #expect(since.status == 2 && since.stderr.contains("15m") && since.stderr.contains("ns"), "\(since.stderr)")
        #expect(try ctl(["conversions", "--hosts", hosts, "--since", "1795773600000000000ns", "--json"]).status == 0)

        // The faults table: what the guest did, and which side of memory, in columns of their own.
        let faults = try ctl(["faults", "--hosts", hosts])
        let header = faults.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.contains("ACCESS") && header.contains("PAGE"), "\(header)")
        let rows = faults.stdout.split(separator: "\n").dropFirst()
        #expect(
            !rows.isEmpty
                && rows.allSatisfy { row in
                    ["read", "write", "exec", "unknown"].contains { row.contains(" \($0) ") }
                        && (row.contains(" private ") || row.contains(" shared "))
                }, "\(faults.stdout)")

        // No token at all: one local line, no request made.
        let environment: [String: String?] = [
            "MEMGATE_CONFIG": nil, "HOME": "/nonexistent-memgate-home", "MEMGATE_HOSTS": nil, "MEMGATE_TOKEN": nil,
        ]
        let tokenless = try TestSupport.run(
            try TestSupport.binaryPath("memgatectl"), ["hosts", "--hosts", hosts], environment: environment)
        #expect(
            tokenless.status == 2 && tokenless.stderr.split(separator: "\n").count == 1
                && tokenless.stderr.contains("--token-file") && tokenless.stderr.contains("MEMGATE_TOKEN"),
            "\(tokenless.stderr)")
    }

    /// `events` takes the filters the other read commands take; `--vm` is scoped to one host.
    @Test func eventsFilterByKindVMTimeAndTail() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        for (index, name) in ["one", "two"].enumerated() {
            #expect(
                try agent.request(
                    "POST", "/v1/vms",
                    json: #"{"name":"\#(name)","image":"churn.elf","command_line":"5","memory_mib":16}"#
                ).status == 201)
            _ = try agent.waitForEnd(index + 1, seconds: 60)
        }
        let one = try hostsFile(["\(agent.url) host-a"])
        let two = try hostsFile(["\(agent.url) host-a", "\(agent.url) host-b"])
        func events(_ arguments: [String], hosts: String = one) throws -> [[String: Any]] {
            let result = try ctl(["events", "--hosts", hosts, "--json"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return result.stdout.split(separator: "\n").map { jsonObject(String($0)) }
        }
        let lifecycle = try events(["--kind", "vm"])
        #expect(
            !lifecycle.isEmpty && lifecycle.allSatisfy { ($0["kind"] as? String)?.hasPrefix("vm_") == true },
            "\(lifecycle)")
        #expect(Set(lifecycle.compactMap { $0["kind"] as? String }) == ["vm_created", "vm_started", "vm_ended"])
        let second = try events(["--vm", "2", "--kind", "conversion,vm_ended"])
        #expect(
            second.count == 6
                && second.allSatisfy { (($0["conversion"] ?? $0["vm_event"]) as? [String: Any])?["vm_id"] as? Int == 2 },
            "\(second)")
        let everything = try events([])
        let newest = try events(["--tail", "3"])
        #expect(
            newest.count == 3
                && (newest.compactMap { $0["event_id"] as? Int })
                    == everything.suffix(3).compactMap { $0["event_id"] as? Int }
        )
        #expect(try events(["--since", "2099-01-01T00:00:00Z"]).filter { !$0.isEmpty }.isEmpty)
        // VM ids are per host: --vm over two hosts is refused, not mixed.
        let mixed = try ctl(["events", "--hosts", two, "--vm", "1"])
        #expect(mixed.status == 2 && mixed.stderr.contains("--vm"), "\(mixed.stderr)")
        for command in ["faults", "conversions"] {
            #expect(try ctl([command, "--hosts", two, "--vm", "1"]).status == 2, "\(command) --vm over two hosts")
            #expect(try ctl([command, "--hosts", one, "--vm", "1"]).status == 0, "\(command) --vm on one host")
        }
        #expect(try ctl(["events", "--hosts", one, "--follow", "--since", "1m"]).status == 2)
        #expect(try ctl(["events", "--hosts", one, "--kind", "faults"]).status == 2)
    }

    /// `vms -l` takes kubectl's label selectors; `--select` keeps choosing hosts; `--state` filters by state.
    @Test func vmsByLabelSelectorAndState() throws {
        let agent = try AgentProcess()
        defer {
            agent.stopVMProcesses()
            agent.terminate()
            agent.removeFiles()
        }
        let vms = [
            ("a-1", #"{"tenant":"a","canary":"yes"}"#, "5"), ("b-1", #"{"tenant":"b"}"#, "5"),
            ("c-1", #"{"tenant":"c"}"#, "0"),
        ]
        for (name, labels, count) in vms {
            let created = try agent.request(
                "POST", "/v1/vms",
                json:
                    #"{"name":"\#(name)","image":"churn.elf","command_line":"\#(count)","memory_mib":16,"labels":\#(labels)}"#
            )
            #expect(created.status == 201)
        }
        let ended = try agent.waitForEnd(1, seconds: 60)["state"] as? String ?? "?"
        _ = try agent.waitForEnd(2, seconds: 60)
        let hosts = try hostsFile(["\(agent.url) host-a zone=eu"])
        func names(_ arguments: [String]) throws -> [String] {
            let result = try ctl(["vms", "--hosts", hosts, "-o", "name"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return result.stdout.split(separator: "\n").map(String.init).sorted()
        }
        #expect(try names(["-l", "tenant=c"]) == ["host-a/c-1"])
        #expect(try names(["-l", "tenant in (a,b)"]) == ["host-a/a-1", "host-a/b-1"])
        #expect(try names(["-l", "!canary"]) == ["host-a/b-1", "host-a/c-1"])
        #expect(try names(["-l", "tenant notin (a),!canary", "--select", "zone=eu"]) == ["host-a/b-1", "host-a/c-1"])
        #expect(try names(["--state", "running"]) == ["host-a/c-1"])
        #expect(try names(["--state", ended, "-l", "canary"]) == ["host-a/a-1"], "a-1 ended \(ended)")
        // Tables and event lines name the VM next to its id.
        let conversions = try ctl(["conversions", "--hosts", hosts, "--vm", "2"])
        #expect(conversions.status == 0 && conversions.stdout.contains("2 (b-1)"), "\(conversions.stdout)")
        let events = try ctl(["events", "--hosts", hosts, "--vm", "2", "--kind", "conversion"])
        #expect(events.status == 0 && events.stdout.contains("vm 2 (b-1)"), "\(events.stdout)")
        let bad = try ctl(["vms", "--hosts", hosts, "-l", "tenant in a"])
        #expect(bad.status == 2 && bad.stderr.contains("parentheses"), "\(bad.stderr)")
        #expect(try ctl(["vms", "--hosts", hosts, "--state", "sleeping"]).status == 2)
    }
}
