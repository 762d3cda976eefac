import Foundation
import TestSupport
import Testing

/// What a hostile guest can do to the record: nothing an audit query chokes on.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct HostileGuestTests {
    func sqlite(_ db: String, _ sql: String) throws -> TestSupport.ProcessResult {
        try TestSupport.run("/usr/bin/sqlite3", [db, sql])
    }

    /// Two requests for 2^52 pages each: before schema 3 their sizes made `sum(size)` and
    /// `conversion_summary` fail with "integer overflow".
    @Test func hugeInvalidRequestsDoNotBreakAuditSums() throws {
        let db = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-huge-\(UUID().uuidString).db")
            .path
        defer {
            for suffix in ["", "-wal", "-shm", "-ring", ".lock"] {
                try? FileManager.default.removeItem(atPath: db + suffix)
            }
        }
        let run = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"),
            [
                "run", TestSupport.guestPath("explicit"), "--db", db, "--memory-mib", "16",
                "--arg", "200000:fffffffffffff:0 200000:fffffffffffff:0",
            ])
        #expect(run.status == 0, "\(run.stderr)")
        let sums = try sqlite(
            db, "SELECT sum(size), sum(requested_pages) FROM conversions; SELECT sum(bytes) FROM conversion_summary;")
        #expect(sums.status == 0, "\(sums.stderr)")
        #expect(sums.stdout == "0|9007199254740990\n0\n", "\(sums.stdout)")
    }
}
