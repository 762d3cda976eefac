import Foundation
import TestSupport
import Testing

/// When the event store breaks, recording stops for good, every VM fails with the
/// store's reason, and the agent says so on stderr and in its exit status (74).
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct RecordingFailureTests {
    func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-fail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Waits for the churn guest to be converting, then `act`s; the agent must end with 74.
    func expectRecordingFailure(db: String, reasonContains: String, act: () throws -> Void) throws {
        let agent = try TestSupport.binaryPath("memgate-agent")
        let child = try RunningProcess(
            agent, ["run", TestSupport.guestPath("churn"), "--db", db, "--memory-mib", "16"])
        for _ in 0..<5000 where !child.stdout.contains("acked") { usleep(1000) }
        #expect(child.stdout.contains("acked"), "the guest never started converting: \(child.stderr)")
        try act()
        let ended = child.waitForExit(seconds: 60)
        if !ended { child.kill() }
        #expect(ended, "the agent kept running after its store failed")
        let status = child.wait()
        #expect(status == 74, "status \(status), stderr: \(child.stderr)")
        #expect(child.stderr.contains("recording failed") && child.stderr.contains(reasonContains), "\(child.stderr)")
        #expect(!child.stderr.contains("Fatal error"))
    }

    @Test func databaseRemovedMidRun() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = folder.appendingPathComponent("events.db").path
        try expectRecordingFailure(db: db, reasonContains: "removed or replaced") {
            for suffix in ["", "-wal", "-shm"] { try FileManager.default.removeItem(atPath: db + suffix) }
        }
    }

    /// A 12 MiB tmpfs: room for the event ring (8 MiB, allocated up front) and a few MiB of
    /// database, then SQLITE_FULL.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs to fill needs root"))
    func diskFillsUp() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let mount = try TestSupport.run(
            "/bin/mount", ["-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", folder.path])
        try #require(mount.status == 0, "mount failed: \(mount.stderr)")
        defer { _ = try? TestSupport.run("/bin/umount", ["-l", folder.path]) }
        try expectRecordingFailure(db: folder.appendingPathComponent("events.db").path, reasonContains: "full") {}
    }
}
