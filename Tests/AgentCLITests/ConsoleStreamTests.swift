import Foundation
import TestSupport
import Testing

/// `memgate-agent run` streams the guest's console to stdout without letting stdout
/// hold the VM: a pipe nobody drains, a closed pipe, a full disk, a terminal.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct ConsoleStreamTests {
    func bash(_ script: String) throws -> TestSupport.ProcessResult {
        try TestSupport.run("/bin/bash", ["-c", script])
    }

    func agent() throws -> String { try TestSupport.binaryPath("memgate-agent") }

    /// Before: the vCPU blocked in write() holding the console lock, and --timeout never fired.
    @Test func aStdoutNobodyDrainsDoesNotHoldTheVMOrTheTimeout() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try agent())
        process.arguments = [
            "run", TestSupport.guestPath("spin-io"), "--arg", "flood", "--no-record", "--memory-mib", "16", "--timeout",
            "2",
        ]
        let stuck = Pipe()  // never read
        // A 4 KiB pipe (F_SETPIPE_SZ), so the guest's output overflows it whatever the host's speed.
        _ = fcntl(stuck.fileHandleForWriting.fileDescriptor, 1031, Int32(4096))
        process.standardOutput = stuck
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errors) }
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        let deadline = Date(timeIntervalSinceNow: 30)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        #expect(!process.isRunning || Date() < deadline, "the agent hung behind a full stdout pipe")
        process.waitUntilExit()
        let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 124, "\(stderr)")
        #expect(stderr.contains("bytes of console output were not written to stdout"), "\(stderr)")
        _ = stuck
    }

    /// `| head -1` closes the pipe: SIGPIPE is ignored, the VM finishes, the status is the guest's.
    @Test func aClosedPipeEndsTheStreamNotTheAgent() throws {
        let result = try bash(
            "'\(try agent())' run '\(TestSupport.guestPath("churn"))' --arg 3000 --no-record --memory-mib 16 2>/tmp/memgate-head-$$.err | head -1; echo \"status=${PIPESTATUS[0]}\"; cat /tmp/memgate-head-$$.err; rm -f /tmp/memgate-head-$$.err"
        )
        #expect(result.stdout.hasPrefix("acked 1\n"), "\(result.stdout)")
        #expect(result.stdout.contains("status=0"), "\(result.stdout)")
        #expect(result.stdout.contains("not written to stdout"), "\(result.stdout)")
    }

    /// Writing to /dev/full fails with ENOSPC: the streaming stops, the VM does not.
    @Test func aFullDiskUnderStdoutEndsTheStreamNotTheAgent() throws {
        let result = try bash(
            "'\(try agent())' run '\(TestSupport.guestPath("churn"))' --arg 300 --no-record --memory-mib 16 >/dev/full")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stderr.contains("not written to stdout") && !result.stderr.contains("Fatal error"),
            "\(result.stderr)")
    }

    /// On a terminal, a guest's escape sequences arrive escaped.
    @Test func escapeSequencesAreEscapedOnATerminal() throws {
        let command =
            "'\(try agent())' run '\(TestSupport.guestPath("bootinfo"))' --no-record --memory-mib 16 --arg \"$(printf 'x\\033[31mred\\007')\""
        let result = try TestSupport.run("/usr/bin/script", ["-qec", command, "/dev/null"])
        #expect(result.stdout.contains("cmdline=x\\x1b[31mred\\x07"), "\(result.stdout)")
        #expect(!result.stdout.contains("\u{1B}[31m"))
        // Not on a terminal: the bytes pass through untouched (a file or a pipe is the operator's choice).
        let piped = try bash(command)
        #expect(piped.stdout.contains("cmdline=x\u{1B}[31mred\u{07}"), "\(piped.stdout)")
    }
}
