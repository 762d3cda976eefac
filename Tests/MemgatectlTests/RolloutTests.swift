import Foundation
import SQLite
import TestSupport
import Testing

/// `memgatectl policy rollout` against eight real agents, each in its own network namespace
/// on a bridge, running real guests.
@Suite(
    .serialized,
    .enabled(
        if: isRoot && TestSupport.kvmAvailable,
        "needs root (network namespaces, a bridge, veth pairs) and /dev/kvm; not both here"))
struct RolloutTests {
    static let benign = #"{"name":"benign","defaults":{"explicit":"allow","implicit":"allow","discard":true}}"#
    static let strict = #"{"name":"strict","defaults":{"explicit":"deny"}}"#

    /// A guest converting until its policy denies it (churn with no limit), on agent `index`.
    func churnForever(_ lab: NetworkLab, _ index: Int) throws {
        let created = try lab.request(
            index, "POST", "/v1/vms", json: #"{"name":"busy","image":"churn.elf","command_line":"0","memory_mib":16}"#)
        #expect(created.status == 201, "\(String(decoding: created.body, as: UTF8.self))")
    }

    /// The JSON lines of a `--json` rollout.
    func steps(_ stdout: String) -> [[String: Any]] {
        stdout.split(separator: "\n").map { jsonObject(String($0)) }
    }

    func waitFor(_ process: RunningProcess, seconds: Double = 60, _ condition: ([[String: Any]]) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if condition(steps(process.stdout)) { return true }
            usleep(20_000)
        }
        return false
    }

    static let quick = ["--connect-timeout", "1", "--retries", "0", "--json"]

    /// Starts a rollout of `policy` with a long bake and kills the controller (SIGKILL) while it bakes the canary wave.
    func rolloutKilledWhileBakingTheCanary(_ policy: String, _ arguments: [String]) throws {
        let process = try RunningProcess(
            try TestSupport.binaryPath("memgatectl"),
            ["policy", "rollout", try policyFile(policy), "--bake", "600"] + arguments)
        #expect(waitFor(process) { $0.contains { $0["event"] as? String == "baking" && $0["wave"] as? Int == 0 } })
        process.kill(SIGKILL)
        _ = process.wait()
    }

    @Test func aBenignCandidateRollsOutInWavesAndADenyingOneIsRolledBackAfterTheCanary() throws {
        let lab = try NetworkLab(agents: 8)
        defer { lab.close() }
        // Every agent has run a guest; the canary runs one that converts until it is denied.
        for index in 0..<8 {
            let created = try lab.request(
                index, "POST", "/v1/vms",
                json: #"{"name":"done","image":"churn.elf","command_line":"50","memory_mib":16}"#)
            let id = (try? JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? Int ?? 0
            #expect(lab.waitForEnd(index, vm: id), "VM \(id) on a\(index) ended")
        }
        let hosts = try lab.hostsFile { $0 == 3 ? "role=canary" : "role=main" }
        let state = rolloutStateFile()

        // --dry-run: the replay on every host and the plan; nothing written.
        let dry = try ctl(
            [
                "policy", "rollout", try policyFile(Self.strict), "--hosts", hosts, "--dry-run", "--canary", "25%",
                "--seed", "1",
                "--state", state,
            ] + Self.quick)
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = steps(dry.stdout).first { $0["event"] as? String == "planned" } ?? [:]
        #expect(
            planned["waves"] as? [Int] == [2, 6]
                && ((planned["replay"] as? [String: Any])?["hosts"] as? [Any])?.count == 8)
        #expect(
            (planned["replay_allowed_to_denied"] as? Int ?? 0) > 0,
            "the guests' recorded conversions would be denied: \(planned)")
        #expect((0..<8).allSatisfy { lab.policyName($0) == "built-in" })

        let rollout = try ctl(
            [
                "policy", "rollout", try policyFile(Self.benign), "--hosts", hosts, "--canary", "1", "--canary-select",
                "role=canary",
                "--bake", "1", "--state", state,
            ] + Self.quick)
        #expect(rollout.status == 0, "\(rollout.stdout) \(rollout.stderr)")
        let lines = steps(rollout.stdout)
        #expect(lines.first { $0["event"] as? String == "planned" }?["waves"] as? [Int] == [1, 4, 3])
        // The plan names each wave's hosts, and no seed: the label chose the canary, not chance.
        let plannedSteps = lines.first { $0["event"] as? String == "planned" } ?? [:]
        #expect(
            (plannedSteps["wave_hosts"] as? [[String]])?.first == ["a3"] && plannedSteps["seed"] == nil,
            "\(plannedSteps)")
        #expect(lines.first { $0["event"] as? String == "pushing" }?["hosts"] as? Int == 1, "the canary wave first")
        let done = lines.last ?? [:]
        #expect(done["event"] as? String == "finished" && done["state"] as? String == "completed")
        #expect((done["hosts"] as? [String: Any])?["pushed"] as? Int == 8)
        #expect((0..<8).allSatisfy { lab.policyName($0) == "benign" })

        try churnForever(lab, 3)
        let denied = try ctl(
            [
                "policy", "rollout", try policyFile(Self.strict), "--hosts", hosts, "--canary", "1", "--canary-select",
                "role=canary",
                "--bake", "600", "--state", state,
            ] + Self.quick)
        #expect(denied.status == 1, "a denial ends the bake at once (the 600 s are never waited for)")
        #expect(
            denied.stderr.contains("new denials") && denied.stderr.contains("a3")
                && denied.stderr.contains("denied: default explicit deny"),
            "\(denied.stderr)")
        let end = steps(denied.stdout).last ?? [:]
        #expect(end["state"] as? String == "breached")
        let breachStep = steps(denied.stdout).first { $0["event"] as? String == "breached" } ?? [:]
        #expect(
            (breachStep["evidence"] as? [String])?.allSatisfy { $0.hasPrefix("a3: ") } == true,
            "evidence names its host: \(breachStep)")
        #expect(
            (end["hosts"] as? [String: Any])?["rolled_back"] as? Int == 1
                && (end["hosts"] as? [String: Any])?["pending"] as? Int == 7,
            "only the canary was changed, and it was restored: \(end)")
        #expect((0..<8).allSatisfy { lab.policyName($0) == "benign" }, "every host on the policy it had")

        // Who and what: the canary's rows name the rollout, its wave, and the rollback; nothing looks manual.
        let first = steps(rollout.stdout).first { $0["event"] as? String == "started" }?["rollout"] as? Int ?? -1
        let second = steps(denied.stdout).first { $0["event"] as? String == "started" }?["rollout"] as? Int ?? -1
        let fleet = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgatectl-fleet-\(UUID().uuidString).db"
        ).path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: fleet + suffix) } }
        let pulled = try ctl(["audit", "pull", "--into", fleet, "--hosts", hosts, "--json"])
        #expect(pulled.status == 0, "\(pulled.stdout) \(pulled.stderr)")
        #expect(
            try sqliteRows(
                fleet,
                "SELECT host, principal, channel, rollout_id FROM fleet_policy_changes WHERE host = 'a3' AND channel != 'built-in (first start)' ORDER BY applied_ns"
            )
                == "a3|admin|rollout \(first) wave 0|\(first)\na3|admin|rollout \(second) wave 0|\(second)\na3|admin|rollback of rollout \(second)|\(second)\n"
        )
        // The README's queries: every change made by a rollout (its rollback included), and every manual change.
        let byRollout = try TestSupport.readmeQueries(section: "Fleet audit SQL").first {
            $0.contains("rollout_id = :rollout")
        }
        #expect(byRollout != nil, "the README has the query for every change a rollout made")
        if let byRollout {
            let rows = try SQLiteConnection(path: fleet, readOnly: true).query(byRollout, [.text("\(second)")])
            #expect(rows.count == 2 && rows.last?[3] == .text("rollback of rollout \(second)"), "\(rows)")
        }
        #expect(
            try sqliteRows(fleet, "SELECT count(*) FROM fleet_policy_changes WHERE channel = 'api'") == "0\n",
            "no row looks manual")
    }

    @Test func aHostChangedBySomeoneElseDuringTheBakeIsLeftAloneAndReported() throws {
        let lab = try NetworkLab(agents: 3)
        defer { lab.close() }
        let hosts = try lab.hostsFile { $0 < 2 ? "role=canary" : "role=main" }
        // A long bake that only a breach ends: nothing here depends on how fast anything runs.
        let process = try RunningProcess(
            try TestSupport.binaryPath("memgatectl"),
            [
                "policy", "rollout", try policyFile(Self.strict), "--hosts", hosts, "--canary", "2",
                "--canary-select", "role=canary", "--bake", "600", "--state", rolloutStateFile(), "--token-file",
                try tokenFile(),
            ]
                + Self.quick)
        #expect(waitFor(process) { $0.contains { $0["event"] as? String == "baking" && $0["wave"] as? Int == 0 } })
        // Someone else changes one canary's policy; then a guest on the other is denied.
        let current = try lab.request(0, "GET", "/v1/policy")
        let someoneElse = try lab.request(
            0, "PUT", "/v1/policy", json: #"{"name":"someone-else"}"#,
            headers: ["If-Match": current.headers["etag"] ?? ""])
        #expect(someoneElse.status == 200, "\(String(decoding: someoneElse.body, as: UTF8.self))")
        try churnForever(lab, 1)
        let status = process.wait()
        #expect(status == 1, "\(process.stderr)")
        let end = steps(process.stdout).last ?? [:]
        let details = end["details"] as? [[String: Any]] ?? []
        #expect(
            details.contains { $0["host"] as? String == "a0" && $0["state"] as? String == "changed_since" }, "\(end)")
        #expect(process.stderr.contains("1 changed by someone else since (left alone)"), "\(process.stderr)")
        #expect(lab.policyName(0) == "someone-else", "left alone")
        #expect(lab.policyName(1) == "built-in" && lab.policyName(2) == "built-in", "restored, or never changed")
    }

    @Test func aKilledControllerResumesOrRollsBackFromItsState() throws {
        let lab = try NetworkLab(agents: 5)
        defer { lab.close() }
        let hosts = try lab.hostsFile()
        let state = rolloutStateFile()
        let token = try tokenFile()
        let arguments =
            ["--hosts", hosts, "--canary", "1", "--seed", "11", "--state", state, "--token-file", token] + Self.quick

        // Killed while baking the canary wave: --resume finishes the rollout.
        try rolloutKilledWhileBakingTheCanary(Self.benign, arguments)
        #expect((0..<5).filter { lab.policyName($0) == "benign" }.count == 1, "the canary was pushed before the kill")
        // Resumed with a shorter bake from here on; it still reads every event since each push.
        let resumed = try ctl(
            ["policy", "rollout", "--resume", "--bake", "1", "--hosts", hosts, "--state", state] + Self.quick)
        #expect(resumed.status == 0, "\(resumed.stdout) \(resumed.stderr)")
        #expect(steps(resumed.stdout).last?["state"] as? String == "completed")
        #expect((0..<5).allSatisfy { lab.policyName($0) == "benign" })

        // Killed while baking the canary of the next: --rollback restores what it touched.
        try rolloutKilledWhileBakingTheCanary(Self.strict, arguments)
        #expect((0..<5).filter { lab.policyName($0) == "strict" }.count == 1, "the canary was pushed")
        let rolledBack = try ctl(["policy", "rollout", "--rollback", "--hosts", hosts, "--state", state] + Self.quick)
        #expect(rolledBack.status == 0, "\(rolledBack.stdout) \(rolledBack.stderr)")
        #expect(steps(rolledBack.stdout).last?["state"] as? String == "rolled_back")
        #expect((0..<5).allSatisfy { lab.policyName($0) == "benign" })
        // Nothing left to resume.
        #expect(
            try ctl(["policy", "rollout", "--resume", "--hosts", hosts, "--state", state] + Self.quick).status == 1)
    }

    /// A host the rollback could not reach is restored by the next --rollback, once it is back.
    @Test func aRollbackThatMissedAHostRetriesItLater() throws {
        let lab = try NetworkLab(agents: 3)
        defer { lab.close() }
        let hosts = try lab.hostsFile()
        let state = rolloutStateFile()
        let arguments =
            ["--hosts", hosts, "--canary", "1", "--seed", "11", "--state", state, "--token-file", try tokenFile()]
            + Self.quick
        try rolloutKilledWhileBakingTheCanary(Self.strict, arguments)
        let canary = try #require((0..<3).first { lab.policyName($0) == "strict" }, "the canary was pushed")
        // The canary drops off the network: the rollback cannot restore it, and says so.
        try lab.cut(canary)
        let missed = try ctl(["policy", "rollout", "--rollback", "--hosts", hosts, "--state", state] + Self.quick)
        #expect(
            missed.status == 1 && steps(missed.stdout).last?["state"] as? String == "rollback_incomplete",
            "\(missed.stdout) \(missed.stderr)")
        // Back on the network, the next --rollback retries it: the old policy is in force everywhere.
        try lab.mend(canary)
        let retried = try ctl(["policy", "rollout", "--rollback", "--hosts", hosts, "--state", state] + Self.quick)
        #expect(
            retried.status == 0 && steps(retried.stdout).last?["state"] as? String == "rolled_back",
            "\(retried.stdout) \(retried.stderr)")
        #expect((0..<3).allSatisfy { lab.policyName($0) == "built-in" })
    }

    @Test func aHostCutOffMidRolloutCountsAgainstMaxUnreachable() throws {
        let lab = try NetworkLab(agents: 4)
        defer { lab.close() }
        let hosts = try lab.hostsFile { $0 == 0 ? "role=canary" : "" }
        let token = try tokenFile()
        for allowed in [0, 1] {
            let process = try RunningProcess(
                try TestSupport.binaryPath("memgatectl"),
                [
                    "policy", "rollout", try policyFile(allowed == 0 ? Self.benign : Self.strict), "--hosts", hosts,
                    "--canary-select", "role=canary", "--bake", "2", "--max-unreachable", "\(allowed)",
                    "--state", rolloutStateFile(), "--token-file", token,
                ] + Self.quick)
            #expect(waitFor(process) { $0.contains { $0["event"] as? String == "baking" && $0["wave"] as? Int == 0 } })
            if allowed == 0 { try lab.cut(2) }  // a host of the next wave drops off the network
            let status = process.wait()
            let end = steps(process.stdout).last ?? [:]
            if allowed == 0 {
                // Cut during the canary's bake, the host fails the next wave's push; cut later, the bake's last look.
                // Either way it counts, the rollout stops, and every host that can be reached is restored.
                #expect(status == 1 && (process.stderr.contains("unreachable hosts")), "\(process.stderr)")
                #expect(["breached", "rollback_incomplete"].contains(end["state"] as? String ?? ""), "\(end)")
                #expect([0, 1, 3].allSatisfy { lab.policyName($0) == "built-in" }, "rolled back")
            } else {
                // One unreachable host allowed: the others get the candidate; the cut one is reported.
                #expect(status == 0, "\(process.stderr)")
                #expect(
                    (end["details"] as? [[String: Any]])?.contains {
                        $0["host"] as? String == "a2" && $0["state"] as? String == "failed"
                    } == true,
                    "\(end)")
                #expect(lab.policyName(0) == "strict" && lab.policyName(1) == "strict" && lab.policyName(3) == "strict")
            }
        }
    }

    func tokenFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rollout-token-\(UUID().uuidString)")
            .path
        try Data(AgentProcess.adminToken.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}
