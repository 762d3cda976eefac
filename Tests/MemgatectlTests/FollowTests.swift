import Foundation
import SQLite
import TestSupport
import Testing

/// `memgatectl events --follow` on the agents' event streams: one connection per host,
/// reconnection with Last-Event-ID after an agent restart, a clean end on SIGINT and
/// SIGTERM, and a --since-file that lets the next follower go on without loss or repeats.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct FollowTests {
    /// A follower process whose stdout lines are read as they come.
    final class Follower {
        let process = Process()
        let lines: PipeLines
        let tokenFile: URL
        let errors: URL

        init(_ arguments: [String]) throws {
            tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "follow-token-\(UUID().uuidString)")
            try Data(AgentProcess.readOnlyToken.utf8).write(to: tokenFile)
            process.executableURL = URL(fileURLWithPath: try TestSupport.binaryPath("memgatectl"))
            process.arguments = ["events", "--follow", "--json", "--token-file", tokenFile.path] + arguments
            process.environment = ["HOME": "/nonexistent-memgate-home", "PATH": "/usr/bin:/bin"]
            let output = Pipe()
            process.standardOutput = output
            errors = FileManager.default.temporaryDirectory.appendingPathComponent("follow-stderr-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: errors)
            lines = PipeLines(output.fileHandleForReading)
            try process.run()
        }

        /// Lines until `done` holds for the whole collection so far (or 60 s).
        func read(until done: ([[String: Any]]) -> Bool) -> [[String: Any]] {
            var objects: [[String: Any]] = []
            let deadline = Date(timeIntervalSinceNow: 60)
            while !done(objects), Date() < deadline, let line = lines.next(deadline: deadline) {
                objects.append(jsonObject(line))
            }
            return objects
        }

        func end(_ signal: Int32) -> Int32 {
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: tokenFile)
            return process.terminationStatus
        }

        /// What the follower said on stderr so far.
        var stderr: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }
    }

    func create(_ agent: AgentProcess, _ name: String, _ count: Int) throws -> Int {
        let response = try agent.request(
            "POST", "/v1/vms",
            json: #"{"name":"\#(name)","image":"churn.elf","command_line":"\#(count)","memory_mib":16}"#)
        #expect(response.status == 201, "\(response.text)")
        return AgentProcess.object(response)["id"] as? Int ?? -1
    }

    /// Every event id of an agent's store, after an API read that waits for its writer.
    func storedIDs(_ agent: AgentProcess) throws -> [Int64] {
        _ = try agent.request("GET", "/v1/events?from=end")
        return try SQLiteConnection(path: agent.database, readOnly: true).query(
            """
            SELECT event_id FROM memory_faults UNION ALL SELECT event_id FROM conversions
            UNION ALL SELECT event_id FROM vm_events UNION ALL SELECT event_id FROM policy_applications ORDER BY 1
            """
        ).compactMap { row -> Int64? in if case .integer(let id) = row[0] { id } else { nil } }
    }

    func ended(_ host: String, _ vm: Int) -> ([[String: Any]]) -> Bool {
        { objects in
            objects.contains {
                $0["host"] as? String == host && $0["kind"] as? String == "vm_ended"
                    && ($0["vm_event"] as? [String: Any])?["vm_id"] as? Int == vm
            }
        }
    }

    @Test func followsTwoHostsAcrossARestartAndResumesFromItsFile() throws {
        let first = try AgentProcess()
        var second = try AgentProcess()
        let secondDirectory = second.directory, secondPort = second.port
        defer {
            for agent in [first, second] {
                agent.terminate()
                agent.removeFiles()
            }
        }
        let hosts = try hostsFile(["\(first.url) one", "\(second.url) two"])
        let since = FileManager.default.temporaryDirectory.appendingPathComponent(
            "follow-since-\(UUID().uuidString).json"
        ).path
        defer { try? FileManager.default.removeItem(atPath: since) }

        var seen: [[String: Any]] = []
        var follower = try Follower(["--hosts", hosts, "--since-file", since, "--from-start"])
        let a = try create(first, "a", 300)
        let b = try create(second, "b", 300)
        seen += follower.read { self.ended("one", a)($0) && self.ended("two", b)($0) }

        // The second agent restarts on its port: the follower reconnects with Last-Event-ID and loses nothing.
        #expect(second.terminate() == 0)
        second = try AgentProcess(directory: secondDirectory, listen: "127.0.0.1:\(secondPort)")
        let c = try create(second, "c", 200)
        seen += follower.read(until: ended("two", c))
        // Events after the restart arrived, so it reconnected: and it said so, not only that it was going to.
        #expect(follower.stderr.contains("two: reconnected; resuming after event"), "\(follower.stderr)")
        #expect(follower.end(SIGINT) == 0, "SIGINT ends the follow cleanly")

        // Made while nobody followed: the next follower starts where the file says.
        let d = try create(first, "d", 100)
        _ = try first.waitForEnd(d)
        follower = try Follower(["--hosts", hosts, "--since-file", since])
        seen += follower.read(until: ended("one", d))
        #expect(follower.end(SIGTERM) == 0, "SIGTERM too")

        for (name, agent) in [("one", first), ("two", second)] {
            let ids = seen.filter { $0["host"] as? String == name }.compactMap {
                ($0["event_id"] as? Int).map(Int64.init)
            }
            #expect(
                ids == (try storedIDs(agent)),
                "host \(name): every event once, in order, across a restart and two followers")
        }
        let saved = jsonObject((try? String(contentsOfFile: since, encoding: .utf8)) ?? "")["hosts"] as? [String: Any]
        #expect(saved?["one"] as? Int == (try storedIDs(first).last).map(Int.init))
    }

    @Test func aHostThatIsDownDoesNotHoldUpTheOthers() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let gone = try RefusingPort()
        let hosts = try hostsFile(["\(agent.url) good", "http://127.0.0.1:\(gone.port) gone"])
        let follower = try Follower(["--hosts", hosts, "--from-start"])
        let vm = try create(agent, "e", 20)
        let lines = follower.read(until: ended("good", vm))
        #expect(
            lines.filter { $0["host"] as? String == "good" && $0["kind"] as? String == "conversion" }.count == 20,
            "a host that is down does not hold up the others")
        #expect(follower.end(SIGINT) == 0)
    }
}

/// Lines from a pipe, read on a thread of their own so a reader can give up at a deadline.
final class PipeLines: @unchecked Sendable {
    private let condition = NSCondition()
    private var lines: [String] = []
    private var finished = false

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer += chunk
                while let newline = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    condition.lock()
                    lines.append(line)
                    condition.signal()
                    condition.unlock()
                }
            }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next line, or nil at the end of the output or the deadline.
    func next(deadline: Date) -> String? {
        condition.lock()
        defer { condition.unlock() }
        while lines.isEmpty && !finished {
            if !condition.wait(until: deadline) { return nil }
        }
        return lines.isEmpty ? nil : lines.removeFirst()
    }
}
