import Foundation
import TestSupport
import Testing

/// A rollout against one real agent on loopback: a bake that cannot see its host does not pass,
/// and one state file is driven by one controller at a time.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct RolloutGuardTests {
    static let benign = #"{"name":"benign","defaults":{"explicit":"allow","implicit":"allow","discard":true}}"#
    static let quick = ["--connect-timeout", "1", "--retries", "0", "--json"]

    func steps(_ stdout: String) -> [[String: Any]] { stdout.split(separator: "\n").map { jsonObject(String($0)) } }

    /// A read-only peer holding the only stream slot blinds the bake: the host counts as unreachable
    /// (it answers /healthz, but nothing of its events was seen) and the candidate is rolled back.
    @Test func aBakeThatCannotSeeItsHostDoesNotPass() throws {
        let agent = try AgentProcess(extraArguments: ["--max-streams", "1", "--admin-stream-reserve", "0"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let blinder = try CurlEventStream(url: agent.url + "/v1/events/stream", token: AgentProcess.readOnlyToken)
        defer { _ = blinder.kill() }
        for _ in 0..<3000 where try RedTeamProbe.openStreams(agent) < 1 { usleep(10_000) }
        #expect(try RedTeamProbe.openStreams(agent) == 1)
        let hosts = try hostsFile(["\(agent.url) solo"])
        let result = try ctl(
            [
                "policy", "rollout", try policyFile(Self.benign), "--hosts", hosts, "--bake", "2", "--state",
                rolloutStateFile(),
            ] + Self.quick)
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        let last = steps(result.stdout).last ?? [:]
        #expect(last["state"] as? String == "breached", "\(result.stdout)")
        #expect(result.stdout.contains("unreachable") && result.stdout.contains("HTTP 503"), "\(result.stdout)")
    }

    /// A second controller on the same state file is refused, naming the first; after the first is
    /// killed, a new rollout is refused while the old one is still running, and --rollback may go on.
    @Test func oneControllerDrivesAStateFile() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let hosts = try hostsFile(["\(agent.url) solo"])
        let state = rolloutStateFile()
        let token = FileManager.default.temporaryDirectory.appendingPathComponent("guard-token-\(UUID().uuidString)")
            .path
        try Data(AgentProcess.adminToken.utf8).write(to: URL(fileURLWithPath: token))
        let first = try RunningProcess(
            try TestSupport.binaryPath("memgatectl"),
            [
                "policy", "rollout", try policyFile(Self.benign), "--hosts", hosts, "--bake", "600", "--state", state,
                "--token-file", token,
            ] + Self.quick)
        var baking = false
        for _ in 0..<6000 where !baking {
            baking = steps(first.stdout).contains { $0["event"] as? String == "baking" }
            usleep(10_000)
        }
        #expect(baking, "\(first.stdout) \(first.stderr)")
        let second = try ctl(
            ["policy", "rollout", try policyFile(Self.benign), "--hosts", hosts, "--bake", "1", "--state", state]
                + Self.quick)
        #expect(
            second.status == 1 && second.stderr.contains("another memgatectl (pid \(first.pid))"), "\(second.stderr)")
        let resumedBeside = try ctl(["policy", "rollout", "--resume", "--hosts", hosts, "--state", state] + Self.quick)
        #expect(
            resumedBeside.status == 1 && resumedBeside.stderr.contains("another memgatectl"), "\(resumedBeside.stderr)")
        first.kill(SIGKILL)
        _ = first.wait()
        let third = try ctl(
            ["policy", "rollout", try policyFile(Self.benign), "--hosts", hosts, "--bake", "1", "--state", state]
                + Self.quick)
        #expect(
            third.status == 1 && third.stderr.contains("is still running") && third.stderr.contains("--force"),
            "\(third.stderr)")
        let rolledBack = try ctl(["policy", "rollout", "--rollback", "--hosts", hosts, "--state", state] + Self.quick)
        #expect(rolledBack.status == 0, "\(rolledBack.stdout) \(rolledBack.stderr)")
        let forced = try ctl(
            ["policy", "rollout", try policyFile(Self.benign), "--hosts", hosts, "--bake", "0", "--state", state]
                + Self.quick)
        #expect(forced.status == 0, "nothing is running now: \(forced.stdout) \(forced.stderr)")
    }
}

enum RedTeamProbe {
    /// `memgate_event_streams` read over the Unix socket.
    static func openStreams(_ agent: AgentProcess) throws -> Int {
        let text = try BlockingHTTPClient(unixPath: agent.socket).request("GET", "/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix("memgate_event_streams ") }
        return Int(Double(line?.split(separator: " ").last ?? "") ?? -1)
    }
}
