import Foundation
import TestSupport
import Testing

/// `make chaos` (and, for 20 s, `make check`): four hostile `chaos` guests at a time,
/// each replaced by a new seed when it ends, in one agent next to bystanders, while a
/// hostile client (non-reading pipeliners, unauthenticated writes, a body dripper)
/// works on its API. The agent survives, the bystanders finish correctly, the database
/// is intact, no chaos VM added more rows than its recording budget and the policy's
/// rate allow, and the client's refused writes are counted, not recorded one by one.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ChaosTests {
    static let budget = 20  // --record-budget: rows per second per VM and kind (low, so chaos goes over it)
    static let conversionRate = 200  // policy limit: applied conversions per second per VM (bursts as large)

    var seconds: Double {
        ProcessInfo.processInfo.environment["MEMGATE_CHAOS_SECONDS"].flatMap(Double.init) ?? 20
    }

    func sqlite(_ db: String, _ sql: String) throws -> String {
        let result = try TestSupport.run("/usr/bin/sqlite3", [db, sql])
        #expect(result.status == 0, "\(sql): \(result.stderr)")
        return result.stdout
    }

    @Test func fourChaosGuestsNextToBystanders() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-chaos-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let policy = directory.appendingPathComponent("policy.json")
        try Data(#"{"limits":{"max_conversions_per_second":\#(Self.conversionRate)}}"#.utf8).write(to: policy)
        let arguments = ["--record-budget", "\(Self.budget)", "--write-stall-timeout", "2", "--body-timeout", "2"]
        var agent = try AgentProcess(extraArguments: arguments + ["--policy", policy.path], directory: directory)
        defer { agent.removeFiles() }
        var hostile = HostileClient(port: agent.port)
        hostile.start()
        var killedAgent = false
        var refusedBeforeKill = 0

        func create(_ body: String) throws -> Int {
            let response = try agent.request("POST", "/v1/vms", json: body)
            #expect(response.status == 201, "\(response.text)")
            return AgentProcess.object(response)["id"] as? Int ?? -1
        }
        func vm(_ id: Int) throws -> [String: Any] { AgentProcess.object(try agent.request("GET", "/v1/vms/\(id)")) }

        let spinner = try create(
            #"{"name":"bystander-spin","image":"spin-io.elf","command_line":"forever","memory_mib":16}"#)
        var chaos: Set<Int> = []
        var seed = 1
        var ended: [String: Int] = [:]
        var bystanders: [Int] = []
        let started = Date()
        while Date().timeIntervalSince(started) < seconds {
            for id in chaos {
                let state = try vm(id)["state"] as? String ?? "?"
                guard !["created", "running", "paused"].contains(state) else { continue }
                ended[state, default: 0] += 1
                chaos.remove(id)
                #expect(try agent.request("DELETE", "/v1/vms/\(id)").status == 204)
            }
            while chaos.count < 4 {
                chaos.insert(
                    try create(
                        #"{"name":"chaos-\#(seed)","image":"chaos.elf","command_line":"\#(seed)","memory_mib":16}"#))
                seed += 1
            }
            // Once, a third of the way in: the agent is killed, and the next one adopts every VM.
            if !killedAgent && Date().timeIntervalSince(started) > seconds / 3 {
                killedAgent = true
                hostile.stop()
                refusedBeforeKill = hostile.refused.load(ordering: .relaxed)
                agent.terminate(signal: SIGKILL)
                agent = try AgentProcess(extraArguments: arguments, directory: directory)
                let survivor = try vm(spinner)
                #expect(
                    survivor["state"] as? String == "running",
                    "the bystander outlived the agent: \(survivor) \(agent.stderr)")
                hostile = HostileClient(port: agent.port)
                hostile.start()
            }
            if bystanders.isEmpty && Date().timeIntervalSince(started) > seconds / 2 {
                bystanders = [
                    try create(#"{"name":"bystander-hello","image":"hello.elf","memory_mib":16}"#),
                    try create(
                        #"{"name":"bystander-convert","image":"smp-convert.elf","command_line":"windows 40 discard","memory_mib":16}"#
                    ),
                ]
            }
            usleep(50_000)
        }
        for id in chaos { _ = try agent.request("POST", "/v1/vms/\(id)/stop") }
        hostile.stop()
        let refused = hostile.refused.load(ordering: .relaxed)
        print(
            "chaos: \(seed - 1) chaos VMs over \(Int(seconds)) s, the agent killed once, ended as \(ended.sorted { $0.key < $1.key }); "
                + "hostile client: \(hostile.rounds.load(ordering: .relaxed)) rounds, \(refusedBeforeKill) + \(refused) writes refused"
        )
        #expect(killedAgent)
        #expect(refused > 0, "the hostile client was never answered")
        let metrics = try agent.request("GET", "/metrics", token: "").text
        #expect(metrics.contains("memgate_api_refusals_total{kind=\"unauthenticated\"} \(refused)\n"))

        // The agent and the bystanders.
        #expect(try agent.request("GET", "/healthz", token: "").status == 200)
        #expect(try vm(spinner)["state"] as? String == "running")
        for id in bystanders {
            let end = try agent.waitForEnd(id, seconds: 60)
            #expect(end["state"] as? String == "stopped" && end["exit_status"] as? Int == 0, "\(end)")
        }
        #expect(bystanders.count == 2)
        #expect(
            agent.terminate() == 0,
            "the agent did not stop cleanly: \((try? String(contentsOfFile: agent.stderrPath, encoding: .utf8)) ?? "")")

        // The record.
        #expect(try sqlite(agent.database, "PRAGMA integrity_check;") == "ok\n")
        #expect(try sqlite(agent.database, "SELECT count(*) FROM api_requests WHERE status = 401;") == "0\n")
        // The killed agent's refusals counted since its last flush died with it; the second agent's are all there.
        let refusals =
            Int(
                try sqlite(agent.database, "SELECT sum(requests) FROM api_refusals WHERE kind = 'unauthenticated';")
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(
            refusals >= refused && refusals <= refused + refusedBeforeKill,
            "\(refusals) vs \(refusedBeforeKill) + \(refused)")
        let perVM = try sqlite(
            agent.database,
            """
            SELECT v.name, (coalesce(v.ended_ns, v.created_ns) - coalesce(v.started_ns, v.created_ns)) / 1e9,
                   (SELECT count(*) FROM memory_faults f WHERE f.vm_id = v.vm_id) + (SELECT count(*) FROM conversions c WHERE c.vm_id = v.vm_id)
            FROM vms v WHERE v.name LIKE 'chaos-%';
            """)
        var totalRows = 0
        for line in perVM.split(separator: "\n") {
            let fields = line.split(separator: "|")
            guard fields.count == 3, let lifetime = Double(fields[1]), let rows = Int(fields[2]) else {
                Issue.record("bad row \(line)")
                continue
            }
            // Per second: at most `budget` rows of each of faults, invalid and denied requests, and the
            // policy's applied conversions (plus one burst); one second of slack at each end.
            let bound = Int((lifetime + 2) * Double(3 * Self.budget + Self.conversionRate)) + Self.conversionRate
            #expect(rows <= bound, "\(fields[0]) lived \(lifetime) s and added \(rows) rows (bound \(bound))")
            totalRows += rows
        }
        let aggregated = try sqlite(agent.database, "SELECT count(*), coalesce(sum(events), 0) FROM event_aggregates;")
        let size = (try? FileManager.default.attributesOfItem(atPath: agent.database)[.size] as? Int) ?? 0
        print(
            "chaos: \(totalRows) event rows for the chaos VMs, aggregates (rows|events): \(aggregated.trimmingCharacters(in: .whitespacesAndNewlines)), database \(size / 1024) KiB"
        )
        #expect(
            aggregated.split(separator: "|").first.flatMap { Int($0) } ?? 0 > 0,
            "no chaos guest ever went over its budget")
    }
}
