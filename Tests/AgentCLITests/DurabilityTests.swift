import Foundation
import TestSupport
import Testing

/// The event store as operators use it: kill -9 at random moments, the db subcommands.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct DurabilityTests {
    func sqlite(_ db: String, _ sql: String) throws -> TestSupport.ProcessResult {
        try TestSupport.run("/usr/bin/sqlite3", [db, sql])
    }

    func temporaryDatabase() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("memgate-\(UUID().uuidString).db").path
    }

    func removeDatabase(_ path: String) {
        for suffix in ["", "-wal", "-shm", "-ring", ".lock"] {
            try? FileManager.default.removeItem(atPath: path + suffix)
        }
    }

    /// One agent records into a database; a second one on the same file is refused clearly.
    @Test func secondAgentOnTheSameDatabaseIsRefused() throws {
        let db = temporaryDatabase()
        defer { removeDatabase(db) }
        let agent = try TestSupport.binaryPath("memgate-agent")
        let first = try RunningProcess(agent, ["run", TestSupport.guestPath("churn"), "--db", db])
        for _ in 0..<5000 where !first.stdout.contains("acked") { usleep(1000) }
        let second = try TestSupport.run(agent, ["run", TestSupport.guestPath("hello"), "--db", db])
        #expect(second.status == 2)
        #expect(second.stderr.contains("another memgate-agent is recording into \(db); give each agent its own --db"))
        // Readers are not locked out.
        let check = try TestSupport.run(agent, ["db", "check", "--db", db])
        #expect(check.stdout.contains("integrity: ok"))
        first.kill(SIGKILL)
        first.wait()
        // Once the first agent is gone, the database is free again.
        let third = try TestSupport.run(agent, ["run", TestSupport.guestPath("hello"), "--db", db])
        #expect(third.status == 0)
    }

    /// SIGKILL the agent 20 times mid-churn: the database is intact and, once the ring
    /// is applied, holds at least every conversion the guest printed as acknowledged.
    @Test func killNineNeverLosesAnAcknowledgedConversion() throws {
        var generator = SystemRandomNumberGenerator()
        let agent = try TestSupport.binaryPath("memgate-agent")
        for round in 1...20 {
            let db = temporaryDatabase()
            defer { removeDatabase(db) }
            let child = try RunningProcess(
                agent, ["run", TestSupport.guestPath("churn"), "--db", db, "--memory-mib", "16"])
            // Wait until it is converting, then kill it at a random moment.
            for _ in 0..<5000 where !child.stdout.contains("acked") { usleep(1000) }
            usleep(UInt32.random(in: 1_000...150_000, using: &generator))
            child.kill(SIGKILL)
            child.wait()
            #expect(child.exitedBySignal, "round \(round): the agent ended before it was killed")
            let acked =
                child.stdout.split(separator: "\n").compactMap { line in
                    line.hasPrefix("acked ") ? Int(line.dropFirst(6)) : nil
                }.max() ?? 0
            #expect(acked > 0, "round \(round): the guest acknowledged nothing before the kill")
            // Acknowledged events the agent had not yet committed are in its ring; `db migrate`
            // (or the next agent on this database) applies them.
            let migrate = try TestSupport.run(agent, ["db", "migrate", "--db", db])
            #expect(migrate.status == 0, "round \(round): \(migrate.stderr)")
            let check = try sqlite(
                db,
                "PRAGMA integrity_check; SELECT count(*) FROM conversions c JOIN vms v USING (vm_id) WHERE v.name = 'churn';"
            )
            let lines = check.stdout.split(separator: "\n").map(String.init)
            #expect(check.status == 0 && lines.first == "ok", "round \(round): \(check.stdout) \(check.stderr)")
            let recorded = Int(lines.last ?? "") ?? -1
            #expect(
                recorded >= acked, "round \(round): \(recorded) conversions recorded, guest saw \(acked) acknowledged")
        }
    }

    @Test func databaseSubcommands() throws {
        let db = temporaryDatabase()
        defer { removeDatabase(db) }
        let agent = try TestSupport.binaryPath("memgate-agent")
        let missing = try TestSupport.run(agent, ["db", "check", "--db", db])
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"))
        // The newest schema is the number of bundled migrations (one file each, numbered from 1).
        let latest = try FileManager.default.contentsOfDirectory(
            atPath: TestSupport.packageRoot.appendingPathComponent("Migrations").path
        )
        .filter { $0.hasSuffix(".sql") }.count
        let migrate = try TestSupport.run(agent, ["db", "migrate", "--db", db])
        #expect(migrate.status == 0 && migrate.stdout.contains("schema version 0 -> \(latest)"), "\(migrate.stdout)")
        let again = try TestSupport.run(agent, ["db", "migrate", "--db", db])
        #expect(again.stdout.contains("schema version \(latest), up to date"))
        let run = try TestSupport.run(agent, ["run", TestSupport.guestPath("churn"), "--arg", "10", "--db", db])
        #expect(run.status == 0)
        let check = try TestSupport.run(agent, ["db", "check", "--db", db])
        #expect(check.status == 0)
        #expect(check.stdout.contains("integrity: ok") && check.stdout.contains("conversions: 10 (0 pending"))
        // Nothing is older than a day, and VMs that have not ended are never pruned.
        let prune = try TestSupport.run(agent, ["db", "prune", "--db", db, "--older-than", "1d"])
        #expect(
            prune.status == 0
                && prune.stdout.contains("pruned 0 memory faults, 0 conversions, 0 VM lifecycle events, 0 VMs"))
        let pruneAll = try TestSupport.run(agent, ["db", "prune", "--db", db, "--older-than", "0s"])
        #expect(pruneAll.stdout.contains("10 conversions, 3 VM lifecycle events, 1 VMs"), "\(pruneAll.stdout)")
        // What stays still verifies, from the genesis the prune left.
        let verify = try TestSupport.run(agent, ["db", "verify", "--db", db])
        #expect(
            verify.status == 0 && verify.stdout.contains("events chain: ok")
                && verify.stdout.contains("from its genesis after"), "\(verify.stdout)")
        let bad = try TestSupport.run(agent, ["db", "prune", "--db", db, "--older-than", "soon"])
        #expect(bad.status != 0 && bad.stderr.contains("--older-than"))
        // A newer schema is refused with a clear message.
        _ = try sqlite(db, "PRAGMA user_version = 99;")
        let newer = try TestSupport.run(agent, ["run", TestSupport.guestPath("hello"), "--db", db])
        #expect(newer.status == 2 && newer.stderr.contains("schema version 99"))
    }

    @Test func noRecordLeavesNoDatabase() throws {
        let db = temporaryDatabase()
        let result = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"),
            ["run", TestSupport.guestPath("implicit"), "--db", db, "--no-record"])
        #expect(result.status == 0)
        #expect(!FileManager.default.fileExists(atPath: db))
    }
}
