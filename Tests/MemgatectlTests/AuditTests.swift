import Foundation
import SQLite
import TestSupport
import Testing

let conversionColumns = """
    event_id, vm_id, vcpu, requested_ns, coalesce(completed_ns, -1), gpa, size, direction, trigger, decision, reason, \
    policy_version, source, changed_bytes, discarded_bytes, guest_result
    """
let faultColumns = "event_id, vm_id, vcpu, time_ns, gpa, size, flags, source"

func sqliteRows(_ path: String, _ sql: String) throws -> String {
    try TestSupport.run("/usr/bin/sqlite3", ["-separator", "|", path, sql]).stdout
}

/// Three agents that each ran a converting guest, and a hosts file naming them.
final class ConvertedFleet {
    let agents: [AgentProcess]
    let hosts: String
    let conversionsPerHost: Int

    init(conversions: Int) throws {
        conversionsPerHost = conversions
        agents = try (0..<3).map { _ in try AgentProcess() }
        hosts = try hostsFile(agents.enumerated().map { "\($1.url) h\($0)" })
        for agent in agents {
            let created = try agent.request(
                "POST", "/v1/vms",
                json: #"{"name":"churn","image":"churn.elf","command_line":"\#(conversions)","memory_mib":16}"#)
            #expect(created.status == 201)
        }
        for agent in agents { _ = try agent.waitForEnd(1, seconds: 60) }
        // One denial on h0, so the fleet has something to audit.
        #expect(
            try agents[0].request(
                "PUT", "/v1/policy", json: #"{"defaults":{"explicit":"deny"}}"#, headers: ["If-Match": "*"]
            ).status == 200)
        #expect(
            try agents[0].request(
                "POST", "/v1/vms",
                json: #"{"name":"denied","image":"explicit.elf","command_line":"0:1:0","memory_mib":16}"#
            ).status == 201)
        _ = try agents[0].waitForEnd(2, seconds: 60)
    }

    /// Conversions all hosts recorded.
    var total: Int { conversionsPerHost * agents.count + 1 }

    /// Events of every kind host `index` recorded (what `audit pull` pulls and verifies).
    func events(_ index: Int) throws -> Int {
        let sql =
            "SELECT (SELECT count(*) FROM memory_faults) + (SELECT count(*) FROM conversions) + (SELECT count(*) FROM vm_events)"
            + " + (SELECT count(*) FROM policy_applications WHERE event_id IS NOT NULL)"
        return Int(try sqliteRows(agents[index].database, sql).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    deinit {
        for agent in agents {
            agent.terminate()
            agent.removeFiles()
        }
    }

    /// Every row of every host equals what the host itself recorded.
    func expectEqual(_ rowsOf: (String, String, String) throws -> String) throws {
        for (index, agent) in agents.enumerated() {
            let own = try sqliteRows(agent.database, "SELECT \(conversionColumns) FROM conversions ORDER BY event_id")
            #expect(own.split(separator: "\n").count == conversionsPerHost + (index == 0 ? 1 : 0))
            #expect(try rowsOf("h\(index)", "conversions", conversionColumns) == own, "conversions of h\(index)")
            let faults = try sqliteRows(agent.database, "SELECT \(faultColumns) FROM memory_faults ORDER BY event_id")
            #expect(try rowsOf("h\(index)", "memory_faults", faultColumns) == faults, "memory faults of h\(index)")
        }
    }
}

func newEvents(_ result: TestSupport.ProcessResult) -> [Int] {
    (jsonObject(result.stdout)["hosts"] as? [[String: Any]] ?? []).compactMap { $0["events"] as? Int }
}

@Suite(.serialized, .enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct AuditTests {
    @Test func pullIntoSQLiteIsIncrementalAndResumesAfterAKill() throws {
        let fleet = try ConvertedFleet(conversions: 600)
        let database = fleet.agents[0].directory.appendingPathComponent("fleet.db").path
        let tokenFile = fleet.agents[0].directory.appendingPathComponent("ctl-token").path
        try Data(AgentProcess.adminToken.utf8).write(to: URL(fileURLWithPath: tokenFile))

        // A slow pull (2 events a page), killed part-way.
        let pull = try RunningProcess(
            try TestSupport.binaryPath("memgatectl"),
            [
                "audit", "pull", "--into", database, "--page-size", "2", "--hosts", fleet.hosts, "--token-file",
                tokenFile,
            ])
        var partial = 0
        for _ in 0..<400 {
            partial =
                Int(
                    (try? sqliteRows(database, "SELECT count(*) FROM conversions"))?.trimmingCharacters(
                        in: .whitespacesAndNewlines) ?? "") ?? 0
            if partial >= 60 { break }
            usleep(10_000)
        }
        pull.kill(SIGKILL)
        pull.wait()
        let afterKill =
            Int(
                try sqliteRows(database, "SELECT count(*) FROM conversions").trimmingCharacters(
                    in: .whitespacesAndNewlines)) ?? 0
        #expect(afterKill > 0 && afterKill < fleet.total, "the pull was interrupted part-way (\(afterKill) rows)")
        let cursorsConsistent = try sqliteRows(
            database,
            """
            SELECT count(*) FROM hosts h WHERE after_event_id < coalesce((SELECT max(event_id) FROM conversions c WHERE c.host = h.host), 0)
                OR (after_event_id > 0 AND after_event_id != chain_event_id)
            """)
        #expect(cursorsConsistent == "0\n", "every cursor and chain head matches the rows committed with it")
        let pulledBefore =
            Int(
                try sqliteRows(
                    database,
                    "SELECT (SELECT count(*) FROM conversions) + (SELECT count(*) FROM vm_events) + (SELECT count(*) FROM memory_faults)"
                )
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0

        let resumed = try ctl([
            "audit", "pull", "--into", database, "--page-size", "50", "--hosts", fleet.hosts, "--json",
        ])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        // Policy applications are chained events too, but stored from the policy history: counted, not in the event tables.
        let policyEvents = try (0..<3).map {
            try Int(
                sqliteRows(fleet.agents[$0].database, "SELECT count(*) FROM policy_applications")
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }.reduce(0, +)
        let everything = try (0..<3).map { try fleet.events($0) }.reduce(0, +)
        #expect(newEvents(resumed).reduce(0, +) >= everything - pulledBefore - policyEvents)
        #expect(newEvents(resumed).reduce(0, +) <= everything - pulledBefore)
        try fleet.expectEqual { host, table, columns in
            try sqliteRows(database, "SELECT \(columns) FROM \(table) WHERE host = '\(host)' ORDER BY event_id")
        }
        let again = try ctl(["audit", "pull", "--into", database, "--hosts", fleet.hosts, "--json"])
        #expect(again.status == 0 && newEvents(again) == [0, 0, 0], "pulling twice adds nothing")
        #expect(try sqliteRows(database, "SELECT count(*) FROM conversions") == "\(fleet.total)\n")
        #expect(
            try sqliteRows(database, "SELECT host, name FROM vms ORDER BY host, vm_id")
                == "h0|churn\nh0|denied\nh1|churn\nh2|churn\n")
        #expect(try sqliteRows(database, "PRAGMA integrity_check") == "ok\n")

        // The README's fleet audit SQL, taken from the README itself, answers on the pulled fleet.
        let queries = try TestSupport.readmeQueries(section: "Fleet audit SQL")
        #expect(queries.count >= 4)
        let connection = try SQLiteConnection(path: database, readOnly: true)
        // A query with a parameter (:rollout, :at_ns) is run where there is one to give it (RolloutTests, PastMemoryTests).
        for query in queries where !query.contains(":rollout") && !query.contains(":at_ns") {
            #expect(!(try connection.query(query)).isEmpty, "no rows from:\n\(query)")
        }
        #expect(try sqliteRows(database, "SELECT host, reason FROM fleet_denials") == "h0|default explicit deny\n")

        // Who changed what: every host's history and admitted writes, each document once.
        #expect(
            try sqliteRows(database, "SELECT host, principal, channel FROM fleet_policy_changes WHERE channel = 'api'")
                == "h0|admin|api\n")
        #expect(
            try sqliteRows(
                database, "SELECT host, applied_by, name FROM fleet_policy_changes ORDER BY host, applied_ns")
                == "h0|built-in (first start)|built-in\nh0|api: admin|\nh1|built-in (first start)|built-in\nh2|built-in (first start)|built-in\n"
        )
        #expect(
            try sqliteRows(database, "SELECT document FROM fleet_policy_changes WHERE applied_by = 'api: admin'")
                == #"{"defaults":{"explicit":"deny"}}"# + "\n")
        #expect(try sqliteRows(database, "SELECT count(*) FROM policy_documents") == "2\n")
        #expect(
            try sqliteRows(database, "SELECT host, client, method, path FROM api_requests ORDER BY host, id")
                == "h0|admin|POST|/v1/vms\nh0|admin|PUT|/v1/policy\nh0|admin|POST|/v1/vms\nh1|admin|POST|/v1/vms\nh2|admin|POST|/v1/vms\n"
        )
        let repeated = try ctl(["audit", "pull", "--into", database, "--hosts", fleet.hosts, "--json"])
        #expect(repeated.status == 0)
        #expect(
            try sqliteRows(database, "SELECT count(*) FROM api_requests") == "5\n",
            "pulling again adds no request twice")
        #expect(try sqliteRows(database, "SELECT count(*) FROM policy_applications") == "4\n")
    }

    @Test(
        .enabled(
            if: PostgresServer.binaries != nil, "needs PostgreSQL's initdb and pg_ctl (apt postgresql); not installed"))
    func pullIntoPostgreSQL() throws {
        let fleet = try ConvertedFleet(conversions: 200)
        let server = try PostgresServer()
        defer { server.stop() }
        let first = try ctl([
            "audit", "pull", "--into", server.uri, "--page-size", "64", "--hosts", fleet.hosts, "--json",
        ])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        #expect(newEvents(first) == [try fleet.events(0), try fleet.events(1), try fleet.events(2)])
        let again = try ctl(["audit", "pull", "--into", server.uri, "--hosts", fleet.hosts, "--json"])
        #expect(again.status == 0 && newEvents(again) == [0, 0, 0])
        try fleet.expectEqual { host, table, columns in
            try server.query("SELECT \(columns) FROM \(table) WHERE host = '\(host)' ORDER BY event_id")
        }
        #expect(
            try server.query("SELECT host, applied_by FROM fleet_policy_changes WHERE applied_by NOT LIKE 'built-in%'")
                == "h0|api: admin\n")
        #expect(try server.query("SELECT count(*) FROM api_requests") == "5\n")
        #expect(try server.query("SELECT count(*) FROM policy_documents") == "2\n")
    }
}

/// A throwaway PostgreSQL server in a temporary directory, on a Unix socket only.
final class PostgresServer {
    static let binaries: String? = {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root))?.sorted() ?? []
        return versions.reversed().map { "\(root)/\($0)/bin" }.first {
            FileManager.default.isExecutableFile(atPath: "\($0)/initdb")
        }
    }()

    let directory: String
    let port = 15_432 + Int(getpid() % 1000)
    var uri: String { "postgresql://postgres@/postgres?host=\(directory)&port=\(port)" }

    init() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("memgate-pg-\(UUID().uuidString)").path
        let bin = PostgresServer.binaries ?? ""
        // PostgreSQL refuses to run as root: as root, run it as the postgres user.
        let asUser = getuid() == 0 ? "runuser -u postgres -- " : ""
        // system(3), not Foundation's Process: pg_ctl leaves a daemon behind, and Process did not
        // notice its shell exiting then (the test hung in waitUntilExit).
        let started = system(
            """
            bash -c 'set -e; mkdir -p \(directory); \(getuid() == 0 ? "chown postgres \(directory)" : "true")
            \(asUser)\(bin)/initdb -D \(directory)/data -A trust -U postgres > \(directory)/initdb.log 2>&1
            \(asUser)\(bin)/pg_ctl -D \(directory)/data -w -l \(directory)/server.log \
                -o "-k \(directory) -p \(port) -c listen_addresses=" start < /dev/null > /dev/null 2>&1'
            """)
        guard started == 0 else {
            throw TestSupport.MissingArtifact(
                path: "PostgreSQL",
                hint:
                    "did not start (status \(started)): \((try? String(contentsOfFile: "\(directory)/server.log", encoding: .utf8)) ?? "")"
            )
        }
    }

    func query(_ sql: String) throws -> String {
        try TestSupport.run("/usr/bin/psql", [uri, "-At", "-F", "|", "-c", sql]).stdout
    }

    func stop() {
        let asUser = getuid() == 0 ? "runuser -u postgres -- " : ""
        _ = system(
            "\(asUser)\(PostgresServer.binaries ?? "")/pg_ctl -D \(directory)/data -m fast stop < /dev/null > /dev/null 2>&1; rm -rf \(directory)"
        )
    }
}
