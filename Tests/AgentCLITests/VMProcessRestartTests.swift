import Foundation
import Glibc
import SQLite
import TestSupport
import Testing

/// VMs in processes of their own outlive their agent: real agents, real VM processes,
/// real KVM, the store read with SQLite. Nothing here waits for a time to pass: each
/// step waits for a condition (a count, a state, a full ring) within a generous bound.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"), .serialized)
struct VMProcessRestartTests {
    /// Small rings fill in well under a second of guest conversions, so a restart always
    /// finds a ring its VM filled while no agent drained it.
    static let ringBytes = "65536"

    static func agent(_ directory: URL, executable: String? = nil) throws -> AgentProcess {
        try AgentProcess(
            extraArguments: ["--vm-ring-bytes", ringBytes, "--log-level", "info"], directory: directory,
            leavesVMsRunning: true, executable: executable)
    }

    static func directory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func create(_ agent: AgentProcess, name: String, image: String = "churn.elf", commandLine: String) throws
        -> (id: Int, pid: Int32)
    {
        let response = try agent.request(
            "POST", "/v1/vms",
            json: #"{"name":"\#(name)","image":"\#(image)","memory_mib":16,"command_line":"\#(commandLine)"}"#)
        #expect(response.status == 201, "\(response.text)")
        let object = AgentProcess.object(response)
        return (object["id"] as? Int ?? -1, Int32(object["pid"] as? Int ?? -1))
    }

    static func vm(_ agent: AgentProcess, _ id: Int) throws -> [String: Any] {
        AgentProcess.object(try agent.request("GET", "/v1/vms/\(id)"))
    }

    static func applied(_ agent: AgentProcess, _ id: Int) throws -> Int {
        (try vm(agent, id)["conversions"] as? [String: Int])?["applied"] ?? 0
    }

    /// Waits for `condition`, bounded only so that a broken build ends instead of hanging.
    static func wait(_ what: String, seconds: Double = 120, _ condition: () throws -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        throw TestSupport.MissingArtifact(path: what, hint: "not reached within \(seconds) s")
    }

    /// True when the VM's ring has less room than one more record: its guest now waits for an agent.
    static func ringIsFull(_ directory: URL, _ id: Int) -> Bool {
        guard
            let data = FileManager.default.contents(atPath: directory.appendingPathComponent("run/vm-\(id).ring").path),
            data.count >= 4096
        else { return false }
        func u64(_ offset: Int) -> UInt64 {
            data[offset..<offset + 8].enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
        }
        let capacity = u64(8), write = u64(24), read = u64(32)
        return capacity > 0 && capacity - (write &- read) < 512
    }

    /// True when `pid` has exited (gone, or a zombie its new parent has not reaped yet).
    static func isGone(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return true }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }

    static func rows(_ database: String, _ sql: String) throws -> [[SQLValue]] {
        try SQLiteConnection(path: database, readOnly: true).query(sql)
    }

    enum Restart: String, CaseIterable, Sendable { case sigkill, sigterm, upgrade }

    /// SIGKILL, SIGTERM or an upgrade (another binary file) while two VMs convert: the next agent adopts both,
    /// and each VM has exactly N applied conversions in the store, with no id twice.
    @Test(arguments: Restart.allCases)
    func restartTouchesNoGuestAndRecordsExactlyOnce(restart: Restart) throws {
        let directory = try Self.directory()
        let n = 3000
        let first = try Self.agent(directory)
        let vms = try ["a", "b"].map { try Self.create(first, name: "churn-\($0)", commandLine: "\(n)") }
        try Self.wait("progress before the restart") { try vms.allSatisfy { try Self.applied(first, $0.id) >= 50 } }
        #expect(
            first.terminate(signal: restart == .sigterm ? SIGTERM : SIGKILL)
                == (restart == .sigterm ? 0 : 128 + SIGKILL) || restart != .sigterm)
        // With no agent the guests go on until their rings are full, then wait: nothing answered unrecorded.
        try Self.wait("both rings full while no agent runs") { vms.allSatisfy { Self.ringIsFull(directory, $0.id) } }
        for vm in vms { #expect(kill(vm.pid, 0) == 0, "VM process \(vm.pid) survived its agent") }

        var executable: String?
        if restart == .upgrade {
            // A second build of the binary: another file, as a package upgrade installs it.
            let copy = directory.appendingPathComponent("memgate-agent-upgraded").path
            try FileManager.default.copyItem(atPath: try TestSupport.binaryPath("memgate-agent"), toPath: copy)
            executable = copy
        }
        let second = try Self.agent(directory, executable: executable)
        defer {
            second.terminate()
            second.stopVMProcesses()
            second.removeFiles()
        }
        #expect(second.stderr.contains("adopted a running VM"), "\(second.stderr)")
        for vm in vms {
            #expect(
                second.stderr.contains("pid=\(vm.pid) vm_id=\(vm.id) [AgentHost] adopted a running VM"),
                "\(second.stderr)")
            let ended = try second.waitForEnd(vm.id, seconds: 300)
            #expect((ended["ring_waits"] as? Int ?? 0) >= 1, "its guest waited for room while no agent ran: \(ended)")
            #expect(ended["state"] as? String == "stopped", "\(ended)")
            #expect(ended["exit_status"] as? Int == 0, "\(ended)")
        }
        for vm in vms {
            let counts = try Self.rows(
                second.database,
                """
                SELECT count(*), count(DISTINCT event_id), sum(decision = 'applied'), sum(decision NOT IN ('applied'))
                FROM conversions WHERE vm_id = \(vm.id)
                """)
            #expect(
                counts.first == [.integer(Int64(n)), .integer(Int64(n)), .integer(Int64(n)), .integer(0)],
                "VM \(vm.id): \(counts)")
            let ends = try Self.rows(
                second.database, "SELECT count(*) FROM vm_events WHERE vm_id = \(vm.id) AND what = 'ended'")
            #expect(ends.first == [.integer(1)], "one end recorded")
        }
        // Event ids are unique across the whole store, too.
        let all = try Self.rows(second.database, "SELECT count(*) - count(DISTINCT event_id) FROM conversions")
        #expect(all.first == [.integer(0)])
    }

    /// SIGKILL one VM process: only it ends, as failed, with the signal named; its neighbour converts on.
    @Test func killingOneVMProcessEndsThatVMAlone() throws {
        let directory = try Self.directory()
        let agent = try Self.agent(directory)
        defer {
            agent.terminate()
            agent.stopVMProcesses()
            agent.removeFiles()
        }
        let victim = try Self.create(agent, name: "victim", commandLine: "0")
        let neighbour = try Self.create(agent, name: "neighbour", commandLine: "0")
        try Self.wait("both converting") {
            try Self.applied(agent, victim.id) > 10 && Self.applied(agent, neighbour.id) > 10
        }
        #expect(kill(victim.pid, SIGKILL) == 0)
        let ended = try agent.waitForEnd(victim.id)
        #expect(ended["state"] as? String == "failed")
        #expect((ended["reason"] as? String ?? "").contains("SIGKILL"), "\(ended)")
        let before = try Self.applied(agent, neighbour.id)
        try Self.wait("the neighbour converts on") { try Self.applied(agent, neighbour.id) > before + 100 }
        #expect(try Self.vm(agent, neighbour.id)["state"] as? String == "running")
        #expect(agent.isRunning)
        let pending = try Self.rows(
            agent.database, "SELECT count(*) FROM conversions WHERE vm_id = \(victim.id) AND decision = 'pending'")
        #expect(pending.first == [.integer(0)], "a killed VM's conversions are final or incomplete, never left pending")
    }

    /// A VM process keeps nothing of the agent's (no store, no listener) and is confined once its VM is built.
    @Test func aVMProcessHoldsOnlyItsOwnAndIsConfined() throws {
        let directory = try Self.directory()
        let agent = try Self.agent(directory)
        defer {
            agent.terminate()
            agent.stopVMProcesses()
            agent.removeFiles()
        }
        let vm = try Self.create(agent, name: "confined", commandLine: "0")
        let status = try String(contentsOfFile: "/proc/\(vm.pid)/status", encoding: .utf8)
        #expect(status.contains("NoNewPrivs:\t1"), "\(status)")
        #expect(status.contains("Seccomp:\t2"), "a seccomp filter is in force: \(status)")
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vm.pid)/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vm.pid)/fd/\($0)")
        }
        #expect(
            !descriptors.contains { $0.contains("agent.db") || $0.contains("tokens") || $0.contains("agent.sock") },
            "\(descriptors)")
        #expect(descriptors.contains { $0.hasSuffix("/vm-\(vm.id).log") }, "\(descriptors)")
        // Its own session: a signal to the agent's process group does not reach it.
        let fields = try String(contentsOfFile: "/proc/\(vm.pid)/stat", encoding: .utf8).split(separator: ")").last?
            .split(separator: " ")
        #expect(fields.map { Int32($0[3]) } == Int32(vm.pid), "the VM process leads its own session")
        #expect(try Self.vm(agent, vm.id)["state"] as? String == "running")
        // Bytes that are not a message end that connection, are counted, and harm nothing.
        let socket = directory.appendingPathComponent("run/vm-\(vm.id).sock").path
        let junk = try TestSupport.run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import socket, sys
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
                s.sendall(b"\\xff\\xff\\xff\\x7fjunk")
                try:
                    print(len(s.recv(16)))
                except ConnectionResetError:
                    print(0)
                """, socket,
            ])
        #expect(
            junk.status == 0 && junk.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0",
            "closed at once: \(junk.stdout) \(junk.stderr)")
        let after = try Self.vm(agent, vm.id)
        #expect(after["refused_connections"] as? Int == 1, "\(after)")
        #expect(after["state"] as? String == "running")
    }

    /// The agent keeps a VM process started ahead of need; a create takes it (its log becomes the VM's),
    /// and a spare whose agent dies exits instead of waiting forever.
    @Test func aSpareTakesTheNextVMAndDiesWithItsAgent() throws {
        let directory = try Self.directory()
        let agent = try Self.agent(directory)
        let run = directory.appendingPathComponent("run").path
        func spares() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).filter { $0.hasPrefix("spare-") }
        }
        func sparePIDs() -> [Int32] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter {
                pid in
                let line =
                    (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))).map {
                        String(decoding: $0, as: UTF8.self)
                    } ?? ""
                return line.contains("--spare") && line.contains(run)
            }
        }
        try Self.wait("a spare is started") { spares().count == 1 }
        let vm = try Self.create(agent, name: "from-spare", commandLine: "0")
        let cmdline = String(
            decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(vm.pid)/cmdline")), as: UTF8.self)
        #expect(cmdline.contains("--spare"), "the VM came from the spare: \(cmdline)")
        #expect(FileManager.default.fileExists(atPath: run + "/vm-\(vm.id).log"))
        try Self.wait("the next spare is started") {
            spares().count == 1 && sparePIDs().filter { $0 != vm.pid }.count == 1
        }
        let spare = try #require(sparePIDs().first { $0 != vm.pid })
        agent.terminate(signal: SIGKILL)
        try Self.wait("the orphaned spare exits") { Self.isGone(spare) }
        #expect(kill(vm.pid, 0) == 0, "the VM it became runs on")
        let second = try Self.agent(directory)
        defer {
            second.terminate()
            second.stopVMProcesses()
            second.removeFiles()
        }
        #expect(
            try Self.vm(second, vm.id)["state"] as? String == "running", "a VM from a spare is adopted like any other")
    }

    /// A guest that ends at once (started with its create) never takes its process down before the
    /// agent has its ready line: every create answers 201 and every VM ends as its guest did.
    @Test func guestsThatEndAtOnceAreCreatedAndRecorded() throws {
        let directory = try Self.directory()
        let agent = try Self.agent(directory)
        defer {
            agent.terminate()
            agent.stopVMProcesses()
            agent.removeFiles()
        }
        for index in 0..<20 {
            let response = try agent.request(
                "POST", "/v1/vms", json: #"{"name":"brief-\#(index)","image":"hello.elf","memory_mib":16}"#)
            #expect(response.status == 201, "\(response.text)")
            let id = AgentProcess.object(response)["id"] as? Int ?? -1
            let ended = try agent.waitForEnd(id)
            #expect(ended["state"] as? String == "stopped" && ended["exit_status"] as? Int == 0, "\(ended)")
        }
    }

    /// A policy pushed while no agent reached the VM (the next agent starts with --policy) reaches it on adoption.
    @Test func policyPushedAcrossARestartReachesTheAdoptedVM() throws {
        let directory = try Self.directory()
        let first = try Self.agent(directory)
        let vm = try Self.create(first, name: "governed", commandLine: "0")
        let before = try Self.vm(first, vm.id)["policy_version"] as? String
        first.terminate(signal: SIGKILL)
        let policy = directory.appendingPathComponent("new-policy.json")
        try Data(#"{"name":"after-restart","defaults":{"explicit":"allow","implicit":"allow"}}"#.utf8).write(to: policy)
        let second = try AgentProcess(
            extraArguments: ["--vm-ring-bytes", Self.ringBytes, "--policy", policy.path], directory: directory,
            leavesVMsRunning: true)
        defer {
            second.terminate()
            second.stopVMProcesses()
            second.removeFiles()
        }
        let inForce = AgentProcess.object(try second.request("GET", "/v1/policy"))
        let version = try second.request("GET", "/v1/policy").headers["etag"]?.trimmingCharacters(
            in: CharacterSet(charactersIn: "\""))
        let adopted = try Self.vm(second, vm.id)
        #expect(adopted["policy_version"] as? String == version, "\(adopted) \(inForce)")
        #expect(adopted["policy_version"] as? String != before)
        // And a PUT while it runs reaches it too.
        let third = #"{"name":"third","defaults":{"explicit":"allow","implicit":"allow","discard":false}}"#
        let put = try second.request("PUT", "/v1/policy", json: third, headers: ["If-Match": "\"\(version ?? "")\""])
        #expect(put.status == 200, "\(put.text)")
        let now = try second.request("GET", "/v1/policy").headers["etag"]?.trimmingCharacters(
            in: CharacterSet(charactersIn: "\""))
        #expect(try Self.vm(second, vm.id)["policy_version"] as? String == now)
    }

    /// A dead pid is closed, not adopted: its ring is still committed and its files are cleaned up.
    @Test func aDeadVMProcessIsClosedNotAdopted() throws {
        let directory = try Self.directory()
        let first = try Self.agent(directory)
        let vm = try Self.create(first, name: "doomed", commandLine: "0")
        try Self.wait("converting") { try Self.applied(first, vm.id) > 10 }
        first.terminate(signal: SIGKILL)
        #expect(kill(vm.pid, SIGKILL) == 0)
        try Self.wait("the VM process is gone") { Self.isGone(vm.pid) }
        let second = try Self.agent(directory)
        defer {
            second.terminate()
            second.removeFiles()
        }
        let closed = try Self.vm(second, vm.id)
        #expect(closed["state"] as? String == "lost", "\(closed)")
        #expect((closed["reason"] as? String ?? "").contains("gone"), "\(closed)")
        #expect(closed["pid"] == nil)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: second.runDirectory).filter {
            $0.hasSuffix(".sock") || $0.hasSuffix(".ring")
        }
        #expect(leftovers.isEmpty, "\(leftovers)")
        let pending = try Self.rows(
            second.database, "SELECT count(*) FROM conversions WHERE vm_id = \(vm.id) AND decision = 'pending'")
        #expect(pending.first == [.integer(0)])
    }

    /// A VM process that does not answer (stopped with SIGSTOP) is ended and recorded, not adopted.
    @Test func aVMProcessThatDoesNotAnswerIsEnded() throws {
        let directory = try Self.directory()
        let first = try Self.agent(directory)
        let vm = try Self.create(first, name: "silent", commandLine: "0")
        first.terminate(signal: SIGKILL)
        #expect(kill(vm.pid, SIGSTOP) == 0)
        let second = try Self.agent(directory)
        defer {
            second.terminate()
            second.removeFiles()
        }
        let ended = try second.waitForEnd(vm.id, seconds: 60)
        #expect(ended["state"] as? String == "failed", "\(ended)")
        #expect((ended["reason"] as? String ?? "").contains("did not answer"), "\(ended)")
        try Self.wait("the silent process is gone") { Self.isGone(vm.pid) }
    }

    enum Impostor: String, CaseIterable, Sendable { case symbolicLink, otherOwner }

    /// A VM socket that is a link, or that belongs to another user, is refused: that VM is not adopted.
    @Test(arguments: Impostor.allCases)
    func aSocketThatIsALinkOrAnotherUsersIsRefused(impostor: Impostor) throws {
        let directory = try Self.directory()
        let first = try Self.agent(directory)
        let vm = try Self.create(first, name: "target", commandLine: "0")
        first.terminate(signal: SIGKILL)
        defer { kill(vm.pid, SIGKILL) }
        let socket = directory.appendingPathComponent("run/vm-\(vm.id).sock").path
        switch impostor {
        case .symbolicLink:
            let elsewhere = directory.appendingPathComponent("elsewhere.sock").path
            #expect(rename(socket, elsewhere) == 0)
            #expect(symlink(elsewhere, socket) == 0)
        case .otherOwner:
            guard geteuid() == 0 else {
                Issue.record("this case needs root to give the socket to another user; run as root (make check does)")
                return
            }
            #expect(lchown(socket, 65534, 65534) == 0)
        }
        let second = try Self.agent(directory)
        defer {
            second.terminate()
            second.removeFiles()
        }
        #expect(second.stderr.contains("refused a VM socket"), "\(second.stderr)")
        let closed = try Self.vm(second, vm.id)
        #expect(closed["state"] as? String == "lost", "\(closed)")
        #expect(kill(vm.pid, 0) == 0, "a refused VM is left alone, not killed: its socket was not proof of who it is")
    }

    /// VMs that ended before a restart are listed after it, with their end, until DELETE.
    @Test func endedVMsAreListedAfterARestart() throws {
        let directory = try Self.directory()
        let first = try Self.agent(directory)
        let vm = try Self.create(first, name: "finished", commandLine: "20")
        let ended = try first.waitForEnd(vm.id)
        #expect(ended["state"] as? String == "stopped")
        first.terminate()
        let second = try Self.agent(directory)
        let listed = try Self.vm(second, vm.id)
        #expect(listed["state"] as? String == "stopped", "\(listed)")
        #expect(listed["exit_status"] as? Int == 0)
        #expect(listed["name"] as? String == "finished")
        #expect(listed["image"] as? String == "churn.elf")
        #expect(listed["command_line"] as? String == "20")
        #expect((listed["conversions"] as? [String: Int])?["applied"] == 20)
        #expect(try second.request("DELETE", "/v1/vms/\(vm.id)").status == 204)
        second.terminate()
        let third = try Self.agent(directory)
        defer {
            third.terminate()
            third.removeFiles()
        }
        #expect(try third.request("GET", "/v1/vms/\(vm.id)").status == 404)
    }

    /// `memgate-agent vm stop` ends VM processes while no agent runs; the next agent records how each ended.
    @Test func vmStopWithoutAnAgent() throws {
        let directory = try Self.directory()
        let first = try Self.agent(directory)
        let vm = try Self.create(first, name: "orphan", commandLine: "0")
        first.terminate()
        let stop = try TestSupport.runAgent([
            "vm", "stop", "--all", "--run-dir", directory.appendingPathComponent("run").path,
        ])
        #expect(stop.status == 0, "\(stop.stdout) \(stop.stderr)")
        try Self.wait("the VM process ends") { Self.isGone(vm.pid) }
        let second = try Self.agent(directory)
        defer {
            second.terminate()
            second.removeFiles()
        }
        let ended = try Self.vm(second, vm.id)
        #expect(ended["state"] as? String == "stopped", "\(ended)")
        #expect(ended["reason"] as? String == "stopped with memgate-agent vm stop", "\(ended)")
    }
}
