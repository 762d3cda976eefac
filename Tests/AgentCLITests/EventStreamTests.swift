import Controller
import Foundation
import SQLite
import TestSupport
import Testing

/// `GET /v1/events/stream` against a real agent, read by real clients: curl (an SSE
/// client that is not ours), killed at arbitrary points, and raw sockets that never read.
@Suite(.serialized) struct EventStreamTests {
    func create(_ agent: AgentProcess, _ body: String) throws -> Int {
        let response = try agent.request("POST", "/v1/vms", json: body)
        #expect(response.status == 201, "\(response.text)")
        return AgentProcess.object(response)["id"] as? Int ?? -1
    }

    /// Every event id in the store (faults, conversions, lifecycle, policy), in order — after an
    /// API read, which waits for the agent's writer to commit what it recorded.
    func storedIDs(_ agent: AgentProcess, after: Int64 = 0) throws -> [Int64] {
        _ = try agent.request("GET", "/v1/events?from=end")
        return try SQLiteConnection(path: agent.database, readOnly: true).query(
            """
            SELECT event_id FROM memory_faults WHERE event_id > ?1 UNION ALL SELECT event_id FROM conversions WHERE event_id > ?1
            UNION ALL SELECT event_id FROM vm_events WHERE event_id > ?1 UNION ALL SELECT event_id FROM policy_applications WHERE event_id > ?1
            ORDER BY 1
            """, [.integer(after)]
        ).compactMap { row -> Int64? in if case .integer(let id) = row[0] { id } else { nil } }
    }

    func stream(_ agent: AgentProcess, after last: Int64?, query: String = "") throws -> CurlEventStream {
        // The first connection names its start in the URL; reconnections send Last-Event-ID, as EventSource does.
        let url = agent.url + "/v1/events/stream" + (last == nil ? "?after=0" : "") + query
        return try CurlEventStream(url: url, token: AgentProcess.readOnlyToken, lastEventID: last)
    }

    func ended(_ vm: Int) -> ([SSEEvent]) -> Bool {
        { events in
            events.contains {
                $0.type == "vm_ended" && ($0.object["vm_event"] as? [String: Any])?["vm_id"] as? Int == vm
            }
        }
    }

    @Test func everyEventOnceInOrderAcrossKilledConnectionsARestartAndAPrune() throws {
        var agent = try AgentProcess()
        let directory = agent.directory
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var received: [SSEEvent] = []
        var last: Int64?
        func take(_ events: [SSEEvent]) {
            received += events
            last = events.last?.id ?? last
        }

        // A guest converting without end while the connection is killed 20 times at arbitrary points,
        // until at least 2,000 of its conversions came through; then it is stopped.
        let churn = try create(agent, #"{"name":"churn","image":"churn.elf","command_line":"0","memory_mib":16}"#)
        func conversions() -> Int { received.filter { $0.type == "conversion" }.count }
        var random = SplitMix64(state: 18)
        for _ in 0..<20 {
            let target = Int(random.next() % 150) + 1
            let reader = try stream(agent, after: last)
            reader.wait { $0.count >= target }
            take(reader.kill())
        }
        while conversions() < 2000 {
            let more = try stream(agent, after: last)
            more.wait { $0.count >= 500 }
            take(more.kill())
        }
        #expect(try agent.request("POST", "/v1/vms/\(churn)/stop").status == 200)
        let rest = try stream(agent, after: last)
        rest.wait(seconds: 120, until: ended(churn))
        take(rest.kill())
        #expect(ended(churn)(received), "the stream reached the VM's end")

        // A SIGTERM restart in the middle of a second guest's conversions.
        let second = try create(agent, #"{"name":"second","image":"churn.elf","command_line":"0","memory_mib":16}"#)
        let before = try stream(agent, after: last)
        before.wait {
            $0.filter { ($0.object["conversion"] as? [String: Any])?["vm_id"] as? Int == second }.count >= 50
        }
        #expect(agent.terminate() == 0)
        take(before.kill())
        agent = try AgentProcess(directory: directory)
        let after = try stream(agent, after: last)
        after.wait(until: ended(second))
        take(after.kill())
        #expect(ended(second)(received), "the end the shutdown recorded arrives after the restart")

        let ids = received.compactMap(\.id)
        #expect(ids.count == received.count, "every event has an id")
        #expect(
            ids == (try storedIDs(agent)), "every event exactly once, in order, across 22 connections and a restart")
        #expect(
            Set(received.map(\.type)).isSuperset(of: [
                "policy_applied", "vm_created", "vm_started", "conversion", "vm_ended",
            ]))
        #expect(received.first?.type == "policy_applied")

        // A prune deletes the ended VMs' events: a reader resuming from before it is told once, then gets what remains.
        let resumeFrom = ids[ids.count / 2]
        let prune = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), ["db", "prune", "--db", agent.database, "--older-than", "0s"])
        #expect(prune.status == 0, "\(prune.stderr)")
        let third = try create(agent, #"{"name":"third","image":"churn.elf","command_line":"10","memory_mib":16}"#)
        let pruned = try stream(agent, after: resumeFrom)
        let afterPrune = pruned.wait(until: ended(third))
        pruned.kill()
        #expect(afterPrune.first?.type == "pruned")
        let notice = afterPrune.first?.object ?? [:]
        #expect((notice["after"] as? Int).map(Int64.init) == resumeFrom)
        #expect(Int64(notice["pruned_through"] as? Int ?? 0) >= ids.last ?? .max)
        let remaining = afterPrune.dropFirst().compactMap(\.id)
        #expect(remaining == (try storedIDs(agent, after: resumeFrom)), "what the prune left, once each, in order")
        #expect(
            (remaining.first { !ids.contains($0) } ?? 0) > ids.last ?? .max, "new ids continue past every id handed out"
        )
    }

    @Test func aReaderThatStopsReadingSlowsNothingGetsOverflowAndResumesWithoutLoss() throws {
        let agent = try AgentProcess(extraArguments: ["--stream-buffer", "262144"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        // A raw Unix-socket reader that sends its request and then reads nothing.
        let stalled = try BlockingHTTPClient(unixPath: agent.socket, timeoutMilliseconds: 60_000)
        try stalled.send("GET /v1/events/stream HTTP/1.1\r\nHost: memgate\r\n\r\n")
        // 6,000 conversions (about 2.7 MB of events) while nobody reads: the guest must finish.
        let flood = try create(agent, #"{"name":"flood","image":"churn.elf","command_line":"6000","memory_mib":16}"#)
        let end = try agent.waitForEnd(flood, seconds: 120)
        #expect(end["exit_status"] as? Int == 0, "the guest ran to its end with a reader that never read: \(end)")
        let metrics = try agent.request("GET", "/metrics").text
        #expect(
            metrics.contains("memgate_event_stream_overflows_total 1"),
            "\(metrics.split(separator: "\n").filter { $0.contains("stream") })")
        // The agent held at most the stream's buffer (--stream-buffer 256 KiB) and one batch beyond it, never the whole flood.
        let peak =
            metrics.split(separator: "\n").first { $0.hasPrefix("memgate_http_buffered_bytes_peak ") }
            .flatMap { Int($0.split(separator: " ").last ?? "") } ?? .max
        #expect(peak < 1 << 20, "peak buffered bytes \(peak)")

        // Now read what was sent: events in order, then one overflow naming where to resume.
        guard let head = try stalled.readResponse(isHead: true) else {
            Issue.record("no response head")
            return
        }
        #expect(head.status == 200 && head.headers["content-type"] == "text/event-stream")
        var parser = SSEParser()
        var events: [SSEEvent] = []
        while true {
            let chunk = try stalled.readChunk()
            if chunk.isEmpty { break }
            events += try parser.feed(chunk)
        }
        #expect(events.last?.type == "overflow")
        let resume = Int64(events.last?.object["resume_after"] as? Int ?? -1)
        #expect(events.last?.id == resume)
        let delivered = events.dropLast().compactMap(\.id)
        #expect(delivered.last == resume, "the overflow names the last event the reader was given")
        #expect(delivered == delivered.sorted() && Set(delivered).count == delivered.count)

        // Resuming there loses nothing.
        let resumed = try CurlEventStream(
            url: agent.url + "/v1/events/stream", token: AgentProcess.readOnlyToken, lastEventID: resume)
        let rest = resumed.wait(until: ended(flood))
        resumed.kill()
        let first = delivered.first ?? 0
        #expect(delivered + rest.compactMap(\.id) == (try storedIDs(agent, after: first - 1)))
    }

    @Test func twoHundredFiftySixStreamsGetEveryEventAndOneMoreGets503() throws {
        // One read-only token holding them all: its share and the admin reserve lifted (RedTeamTests tests them).
        let agent = try AgentProcess(extraArguments: [
            "--max-connections-per-peer", "1000", "--max-streams-per-principal", "1000",
            "--admin-stream-reserve", "0",
        ])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        var readers: [BlockingHTTPClient] = []
        for _ in 0..<256 {
            let reader = try BlockingHTTPClient(port: agent.port, timeoutMilliseconds: 60_000)
            try reader.send(
                "GET /v1/events/stream HTTP/1.1\r\nHost: memgate\r\nAuthorization: Bearer \(AgentProcess.readOnlyToken)\r\n\r\n"
            )
            let head = try reader.readResponse(isHead: true)
            #expect(head?.status == 200)
            readers.append(reader)
        }
        let extra = try agent.request("GET", "/v1/events/stream", token: AgentProcess.readOnlyToken)
        #expect(extra.status == 503 && extra.text.contains("too_many_streams"), "\(extra.status) \(extra.text)")
        #expect(extra.headers["retry-after"] != nil)

        let vm = try create(agent, #"{"name":"many","image":"churn.elf","command_line":"200","memory_mib":16}"#)
        _ = try agent.waitForEnd(vm)
        let expected = try storedIDs(agent).filter { $0 > 1 }
        for (index, reader) in readers.enumerated() {
            var parser = SSEParser()
            var events: [SSEEvent] = []
            while !ended(vm)(events) {
                let chunk = try reader.readChunk()
                if chunk.isEmpty { break }
                events += try parser.feed(chunk)
            }
            #expect(events.compactMap(\.id) == expected, "reader \(index)")
        }
        // Closing a stream frees its slot.
        readers.removeAll()
        var reopened: BlockingHTTPClient.Response?
        for _ in 0..<500 {
            reopened = try agent.request(
                "GET", "/v1/events/stream?after=0&kind=policy_applied", token: AgentProcess.readOnlyToken)
            if reopened?.status == 200 { break }
            usleep(10_000)
        }
        #expect(reopened?.status == 200)
    }

    @Test func filtersAndBadStartsAreAnsweredAtTheEdge() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let a = try create(agent, #"{"name":"a","image":"churn.elf","command_line":"20","memory_mib":16}"#)
        let b = try create(agent, #"{"name":"b","image":"churn.elf","command_line":"20","memory_mib":16}"#)
        _ = try agent.waitForEnd(a)
        _ = try agent.waitForEnd(b)
        let onlyB = try stream(agent, after: nil, query: "&vm=\(b)&kind=vm,conversion")
        let events = onlyB.wait(until: ended(b))
        onlyB.kill()
        #expect(events.count == 20 + 3)
        #expect(events.allSatisfy { $0.type == "conversion" || $0.type.hasPrefix("vm_") })
        #expect(
            events.allSatisfy {
                ($0.object["conversion"] as? [String: Any] ?? $0.object["vm_event"] as? [String: Any])?["vm_id"] as? Int
                    == b
            })
        for (query, code) in [("?kind=nope", 400), ("?vm=0", 400), ("?after=-1", 400)] {
            let response = try agent.request("GET", "/v1/events/stream\(query)", token: AgentProcess.readOnlyToken)
            #expect(response.status == code, "\(query): \(response.text)")
        }
        let badID = try agent.request(
            "GET", "/v1/events/stream", token: AgentProcess.readOnlyToken, headers: ["Last-Event-ID": "x"])
        #expect(badID.status == 400 && badID.text.contains("Last-Event-ID"))
        #expect(try agent.request("GET", "/v1/events/stream", token: "").status == 401)
    }

    /// The pump sleeps once the last stream closes: the agent's CPU time stays flat through
    /// many heartbeat periods (it spun on the heartbeat long past, a whole core, before).
    @Test func theAgentIdlesAfterItsLastStreamCloses() throws {
        let agent = try AgentProcess(extraArguments: ["--stream-heartbeat", "0.1"])
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let reader = try stream(agent, after: nil)
        let vm = try create(agent, #"{"name":"a","image":"churn.elf","command_line":"20","memory_mib":16}"#)
        #expect(reader.wait(until: ended(vm)).contains { $0.type == "conversion" }, "the stream was served")
        reader.kill()
        _ = try agent.request("GET", "/healthz")
        usleep(300_000)  // past several heartbeats with nobody to send them to
        let before = try Self.cpuTicks(agent.pid)
        usleep(1_000_000)
        let used = try Self.cpuTicks(agent.pid) - before
        // An idle agent uses next to nothing; the spin took every tick it was given.
        #expect(used <= 20, "the agent used \(used) of 100 clock ticks in one idle second")
    }

    /// utime + stime of a process, in clock ticks (100 a second).
    static func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
        let fields = stat[stat.index(after: stat.lastIndex(of: ")") ?? stat.startIndex)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }
}
