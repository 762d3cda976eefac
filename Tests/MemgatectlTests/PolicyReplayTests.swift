import Foundation
import SQLite
import TestSupport
import Testing

/// Policy replay against real agents and their real stores: the API, `memgatectl policy
/// replay` across hosts, and the replay that guards `policy push`.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct PolicyReplayTests {
    func create(_ agent: AgentProcess, _ body: String) throws -> Int {
        let response = try agent.request("POST", "/v1/vms", json: body)
        #expect(response.status == 201, "\(response.text)")
        return AgentProcess.object(response)["id"] as? Int ?? -1
    }

    /// The ids of the conversions `churn` recorded as applied to_private (after an API read,
    /// which waits for the agent's writer to commit what it recorded).
    func appliedToPrivate(_ agent: AgentProcess) throws -> [Int64] {
        _ = try agent.request("GET", "/v1/events?from=end")
        return try SQLiteConnection(path: agent.database, readOnly: true)
            .query(
                "SELECT event_id FROM conversions WHERE direction = 'to_private' AND decision = 'applied' ORDER BY event_id"
            )
            .compactMap { row -> Int64? in if case .integer(let id) = row[0] { id } else { nil } }
    }

    static let denyToPrivate =
        #"{"name":"no-private","rules":[{"match":{"direction":"to_private"},"action":"deny","reason":"no way back"}]}"#

    @Test func aCandidateThatDeniesWhatAVMDidReportsExactlyThoseRequests() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let vm = try create(agent, #"{"name":"churn","image":"churn.elf","command_line":"300","memory_mib":16}"#)
        _ = try agent.waitForEnd(vm)
        let expected = try appliedToPrivate(agent)
        #expect(expected.count > 100)

        // A read-only token may replay: it changes nothing.
        let response = try agent.request(
            "POST", "/v1/policy/replay?samples=1000", token: AgentProcess.readOnlyToken, json: Self.denyToPrivate)
        #expect(response.status == 200, "\(response.text)")
        let report = AgentProcess.object(response)
        #expect(report["requests"] as? Int == 300)
        let transitions = report["transitions"] as? [[String: Any]] ?? []
        let allowedToDenied =
            transitions.first { $0["from"] as? String == "allowed" && $0["to"] as? String == "denied" }?["count"]
            as? Int
        #expect(allowedToDenied == expected.count)
        let samples = report["samples"] as? [[String: Any]] ?? []
        #expect(samples.compactMap { ($0["event_id"] as? Int).map(Int64.init) } == expected)
        #expect((samples.first?["candidate"] as? [String: Any])?["reason"] as? String == "no way back")
        #expect((report["by_vm"] as? [[String: Any]])?.first?["allowed_to_denied"] as? Int == expected.count)
        #expect(
            AgentProcess.object(try agent.request("GET", "/v1/policy"))["name"] as? String == "built-in",
            "nothing changed")

        // The policy that made the history, replayed, changes nothing.
        let current = try agent.request("GET", "/v1/policy")
        let same = AgentProcess.object(try agent.request("POST", "/v1/policy/replay", json: current.text))
        #expect(same["changed"] as? Int == 0 && same["requests"] as? Int == 300)

        // A window, and bad candidates and windows, answered at the edge.
        let none = AgentProcess.object(
            try agent.request("POST", "/v1/policy/replay?since=1&until=2", json: Self.denyToPrivate))
        #expect(none["requests"] as? Int == 0)
        let invalid = try agent.request("POST", "/v1/policy/replay", json: #"{"defaults":{"explicit":"maybe"}}"#)
        #expect(invalid.status == 422 && invalid.text.contains("defaults.explicit"), "\(invalid.text)")
        #expect(try agent.request("POST", "/v1/policy/replay?since=5&until=5", json: Self.denyToPrivate).status == 422)
        #expect(try agent.request("POST", "/v1/policy/replay?samples=1001", json: Self.denyToPrivate).status == 400)
    }

    @Test func replayAcrossTheFleetAndAPushThatWouldDenyIsRefused() throws {
        let busy = try AgentProcess()
        let idle = try AgentProcess()
        defer {
            for agent in [busy, idle] {
                agent.terminate()
                agent.removeFiles()
            }
        }
        let vm = try create(busy, #"{"name":"churn","image":"churn.elf","command_line":"200","memory_mib":16}"#)
        _ = try busy.waitForEnd(vm)
        let expected = try appliedToPrivate(busy).count
        let hosts = try hostsFile(["\(busy.url) busy", "\(idle.url) idle"])
        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).json")
        try Data(Self.denyToPrivate.utf8).write(to: policy)
        defer { try? FileManager.default.removeItem(at: policy) }

        let replay = try ctl(
            ["policy", "replay", policy.path, "--hosts", hosts, "--json"], token: AgentProcess.readOnlyToken)
        #expect(replay.status == 0, "\(replay.stderr)")
        let answer = jsonObject(replay.stdout)
        let total = answer["total"] as? [String: Any] ?? [:]
        #expect(
            total["allowed_to_denied"] as? Int == expected && total["hosts"] as? Int == 2
                && total["requests"] as? Int == 200)
        let rows = answer["hosts"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["host"] as? String } == ["busy", "idle"])
        #expect((rows.last?["report"] as? [String: Any])?["requests"] as? Int == 0)
        let table = try ctl(["policy", "replay", policy.path, "--hosts", hosts], token: AgentProcess.readOnlyToken)
        #expect(
            table.stdout.contains("TOTAL") && table.stdout.contains("\(expected) allowed → denied"), "\(table.stdout)")

        // --if-replay-clean: nothing is pushed anywhere.
        let refused = try ctl(["policy", "push", policy.path, "--hosts", hosts, "--if-replay-clean"])
        #expect(
            refused.status != 0 && refused.stderr.contains("not pushed: \(expected) recorded requests"),
            "\(refused.stderr)")
        for agent in [busy, idle] {
            #expect(AgentProcess.object(try agent.request("GET", "/v1/policy"))["name"] as? String == "built-in")
        }
        // Without it, the summary comes first, then the push.
        let pushed = try ctl(["policy", "push", policy.path, "--hosts", hosts])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(
            pushed.stderr.contains("replay: 200 recorded requests on 2 hosts: \(expected) allowed → denied"),
            "\(pushed.stderr)")
        for agent in [busy, idle] {
            #expect(AgentProcess.object(try agent.request("GET", "/v1/policy"))["name"] as? String == "no-private")
        }
        // Now in force, the same policy replays clean where it has not run: the history was made under the old one.
        let again = try ctl(["policy", "push", policy.path, "--hosts", hosts, "--if-replay-clean"])
        #expect(again.status != 0, "the history still holds requests this policy denies")
    }
}
