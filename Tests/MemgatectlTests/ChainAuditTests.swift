import Foundation
import TestSupport
import Testing

/// Issue 30: the fleet database keeps each host's chain heads, so an edited, deleted or
/// inserted row, or a rewritten history, is caught on the next pull or verify; a prune is accepted.
@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ChainAuditTests {
    /// Runs a converting guest to its end on `agent` (VM ids count from 1).
    func converge(_ agent: AgentProcess, vm id: Int, conversions: Int = 40) throws {
        let created = try agent.request(
            "POST", "/v1/vms",
            json: #"{"name":"churn-\#(id)","image":"churn.elf","command_line":"\#(conversions)","memory_mib":16}"#)
        #expect(created.status == 201)
        _ = try agent.waitForEnd(id, seconds: 60)
    }

    func scalar(_ database: String, _ sql: String) throws -> Int64 {
        Int64(try sqliteRows(database, sql).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// The first event after `id` in any table of an agent's store.
    func nextEvent(_ database: String, after id: Int64) throws -> Int64 {
        try scalar(
            database,
            """
            SELECT min(id) FROM (SELECT min(event_id) AS id FROM memory_faults WHERE event_id > \(id)
                UNION ALL SELECT min(event_id) FROM conversions WHERE event_id > \(id) UNION ALL SELECT min(event_id) FROM vm_events WHERE event_id > \(id)
                UNION ALL SELECT min(event_id) FROM policy_applications WHERE event_id > \(id))
            """)
    }

    func pull(_ into: String, _ hosts: String) throws -> TestSupport.ProcessResult {
        try ctl(["audit", "pull", "--into", into, "--hosts", hosts, "--json"])
    }

    /// An agent that ran one converting guest, a hosts file naming it host-a, and a fleet database that pulled it once.
    func pulledOnce() throws -> (agent: AgentProcess, hosts: String, fleet: String) {
        let agent = try AgentProcess()
        let hosts = try hostsFile(["\(agent.url) host-a"])
        let fleet = agent.directory.appendingPathComponent("fleet.db").path
        try converge(agent, vm: 1)
        let first = try pull(fleet, hosts)
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        return (agent, hosts, fleet)
    }

    @Test(arguments: ["edit", "delete", "insert"])
    func aRowAlteredBetweenPullsIsCaught(_ change: String) throws {
        let (agent, hosts, fleet) = try pulledOnce()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let pulledFirst = try scalar(fleet, "SELECT chain_event_id FROM hosts")
        #expect(pulledFirst > 0)

        // More events, then one of them is altered on the host before it is pulled.
        try converge(agent, vm: 2)
        let target = try scalar(
            agent.database, "SELECT event_id FROM conversions WHERE vm_id = 2 ORDER BY event_id LIMIT 1 OFFSET 5")
        let expected: Int64
        switch change {
        case "edit":
            _ = try sqliteRows(
                agent.database, "UPDATE conversions SET reason = 'nothing to see' WHERE event_id = \(target)")
            expected = target
        case "delete":
            _ = try sqliteRows(agent.database, "DELETE FROM conversions WHERE event_id = \(target)")
            expected = try nextEvent(agent.database, after: target)
        default:
            // A row under an id the agent never gave out (so its own writes do not collide with it).
            _ = try sqliteRows(
                agent.database,
                """
                INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source) VALUES (1000000000, 2, 0, 1, 0, 4096, 8, 'kvm')
                """)
            expected = 1_000_000_000
        }
        let second = try pull(fleet, hosts)
        #expect(second.status == 1, "the pull fails: \(second.stdout)")
        let row = (jsonObject(second.stdout)["hosts"] as? [[String: Any]])?.first
        #expect(
            row?["host"] as? String == "host-a" && (row?["error"] as? String)?.contains("chain break") == true,
            "\(second.stdout)")
        #expect(
            try sqliteRows(fleet, "SELECT host, chain, row_id FROM fleet_chain_breaks") == "host-a|events|\(expected)\n"
        )
        // The rows before the break are kept, and none after it.
        let kept = try scalar(fleet, "SELECT count(*) FROM conversions WHERE vm_id = 2")
        #expect(change == "insert" ? kept == 40 : kept == 5, "\(kept) conversions of VM 2 kept")
        #expect(try scalar(fleet, "SELECT chain_event_id FROM hosts") < expected)
        #expect(try scalar(fleet, "SELECT count(*) FROM conversions WHERE event_id >= \(expected)") == 0)
        // The host's own check names the same row (an insertion after the last event is a stray chained row... or not: none).
        let own = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), ["db", "verify", "--db", agent.database])
        #expect(own.status == 1 && own.stderr.contains("\(expected)"), "\(own.stdout) \(own.stderr)")
    }

    /// A history rewritten under a head the fleet keeps: `audit verify` (no pull) and the next pull both name the host.
    @Test func aRewrittenHistoryIsCaughtWithoutPulling() throws {
        let (agent, hosts, fleet) = try pulledOnce()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let clean = try ctl(["audit", "verify", "--into", fleet, "--hosts", hosts])
        #expect(clean.status == 0, "\(clean.stdout) \(clean.stderr)")
        let head = try scalar(fleet, "SELECT chain_event_id FROM hosts")
        // Rewrite: the head row gets another value (as if the chain had been recomputed after an edit).
        for table in ["memory_faults", "conversions", "vm_events", "policy_applications"] {
            _ = try sqliteRows(
                agent.database,
                "UPDATE \(table) SET chain = '\(String(repeating: "ab", count: 32))' WHERE event_id = \(head)")
        }
        let verify = try ctl(["audit", "verify", "--into", fleet, "--hosts", hosts, "--json"])
        #expect(verify.status == 1)
        let rows = jsonObject(verify.stdout)["hosts"] as? [[String: Any]] ?? []
        #expect(
            rows.contains {
                $0["host"] as? String == "host-a" && $0["chain"] as? String == "events"
                    && ($0["error"] as? String)?.contains("rewritten") == true
            }, "\(verify.stdout)")
        #expect(
            try sqliteRows(fleet, "SELECT host, chain, row_id FROM fleet_chain_breaks") == "host-a|events|\(head)\n")
        let again = try pull(fleet, hosts)
        let breaks = try scalar(fleet, "SELECT count(*) FROM fleet_chain_breaks")
        #expect(again.status == 1 && breaks == 2)
    }

    /// A prune on the host (rows cut before they were pulled) is accepted, recorded, and the chain goes on from its genesis.
    @Test func aPruneIsAcceptedAndTheChainGoesOn() throws {
        let (agent, hosts, fleet) = try pulledOnce()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let stored = try scalar(fleet, "SELECT chain_event_id FROM hosts")
        try converge(agent, vm: 2)
        let pruned = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), ["db", "prune", "--db", agent.database, "--older-than", "0s"])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        let genesis = try scalar(
            agent.database, "SELECT max(through_id) FROM chain_genesis WHERE chain_name = 'events'")
        #expect(genesis > stored, "the prune cut rows the fleet had not pulled")
        let second = try pull(fleet, hosts)
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        #expect(
            try sqliteRows(fleet, "SELECT from_id, through_id FROM fleet_chain_cuts WHERE chain = 'events'")
                == "\(stored)|\(genesis)\n")
        try converge(agent, vm: 3)
        let third = try pull(fleet, hosts)
        #expect(third.status == 0 && newEvents(third).first.map { $0 > 40 } == true, "\(third.stdout)")
        #expect(try scalar(fleet, "SELECT count(*) FROM fleet_chain_breaks") == 0)
        #expect(try ctl(["audit", "verify", "--into", fleet, "--hosts", hosts]).status == 0)
        #expect(
            try TestSupport.run(try TestSupport.binaryPath("memgate-agent"), ["db", "verify", "--db", agent.database])
                .status == 0)
    }

    @Test(
        .enabled(
            if: PostgresServer.binaries != nil, "needs PostgreSQL's initdb and pg_ctl (apt postgresql); not installed"))
    func anEditIsCaughtInPostgreSQL() throws {
        let agent = try AgentProcess()
        defer {
            agent.terminate()
            agent.removeFiles()
        }
        let server = try PostgresServer()
        defer { server.stop() }
        let hosts = try hostsFile(["\(agent.url) host-a"])
        try converge(agent, vm: 1)
        #expect(try pull(server.uri, hosts).status == 0)
        try converge(agent, vm: 2)
        let target = try scalar(
            agent.database, "SELECT event_id FROM conversions WHERE vm_id = 2 ORDER BY event_id LIMIT 1 OFFSET 5")
        _ = try sqliteRows(agent.database, "UPDATE conversions SET changed_bytes = 0 WHERE event_id = \(target)")
        #expect(try pull(server.uri, hosts).status == 1)
        #expect(try server.query("SELECT host, chain, row_id FROM fleet_chain_breaks") == "host-a|events|\(target)\n")
        #expect(try server.query("SELECT count(*) FROM conversions WHERE vm_id = 2") == "5\n")
        #expect(
            try ctl(["audit", "verify", "--into", server.uri, "--hosts", hosts]).status == 0,
            "the heads stored still hold")
    }
}
