import Foundation
import Glibc
import MemoryModel
import Platform
import Testing
import VMM

@testable import VMProcess

/// The VM-process protocol's pieces that need no VM: the run directory's rules, the
/// framing of messages on a real socket pair, and the statistics on the wire.
@Suite struct VMProcessTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("memgate-run-\(UUID().uuidString)").path
    }

    @Test func theRunDirectoryIsCreatedPrivateAndRefusedOtherwise() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = try RunDirectory(path: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        #expect(directory.socketPath(7) == path + "/vm-7.sock")
        // Group or other access, a link, or a file: refused, naming the fix.
        chmod(path, 0o755)
        #expect(throws: RunDirectoryError.self) { try RunDirectory(path: path) }
        chmod(path, 0o700)
        let link = temporaryPath()
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        defer { try? FileManager.default.removeItem(atPath: link) }
        #expect(throws: RunDirectoryError.self) { try RunDirectory(path: link) }
        // One agent per run directory.
        let held = try directory.lock()
        defer { close(held) }
        #expect(throws: RunDirectoryError.self) { _ = try directory.lock() }
    }

    @Test func aDirectoryOfAnotherUserIsRefused() throws {
        guard geteuid() == 0 else {
            Issue.record("needs root to give a directory to another user (make check runs as root)")
            return
        }
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        mkdir(path, 0o700)
        chown(path, 65534, 65534)
        #expect(throws: RunDirectoryError.self) { try RunDirectory(path: path) }
    }

    @Test func socketProblemsAreNamed() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try RunDirectory(path: path)
        let plain = path + "/vm-1.sock"
        #expect(FileManager.default.createFile(atPath: plain, contents: Data()))
        #expect(RunDirectory.socketProblem(plain) == "is not a socket")
        let link = path + "/vm-2.sock"
        symlink(plain, link)
        #expect(RunDirectory.socketProblem(link)?.contains("symbolic link") == true)
        #expect(RunDirectory.socketProblem(path + "/vm-3.sock")?.hasPrefix("cannot stat") == true)
        #expect(RunDirectory(unchecked: path).vmIDs() == [1, 2])
    }

    func pair() -> (VMChannel, VMChannel) {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (VMChannel(fd: fds[0], timeoutMillis: 5000), VMChannel(fd: fds[1], timeoutMillis: 5000))
    }

    @Test func messagesCrossWholeAndBadOnesEndTheConversation() throws {
        let (a, b) = pair()
        try a.send(VMRequest(.stop, reason: "because"))
        #expect(try b.receive(VMRequest.self) == VMRequest(.stop, reason: "because"))
        #expect(b.peer?.uid == geteuid() && b.peer?.pid == getpid())
        // A length over the limit is refused before anything is read.
        var huge = [UInt8](repeating: 0xFF, count: 4)
        _ = huge.withUnsafeMutableBytes { Glibc.write(a.fd, $0.baseAddress, 4) }
        #expect(throws: VMChannelError.self) { _ = try b.receive(VMRequest.self) }
        let (c, d) = pair()
        // Bytes that are not a request.
        let junk = Array("{\"op\":\"format-disk\"}".utf8)
        var frame = [UInt8(junk.count), 0, 0, 0] + junk
        _ = frame.withUnsafeMutableBytes { Glibc.write(c.fd, $0.baseAddress, $0.count) }
        #expect(throws: VMChannelError.self) { _ = try d.receive(VMRequest.self) }
        // A clean end between messages is nil; mid-message it is an error.
        c.close()
        #expect(try d.receive(VMRequest.self) == nil)
        huge = [10, 0, 0, 0, 1]
        let (e, f) = pair()
        _ = huge.withUnsafeMutableBytes { Glibc.write(e.fd, $0.baseAddress, $0.count) }
        e.close()
        #expect(throws: VMChannelError.self) { _ = try f.receive(VMRequest.self) }
    }

    @Test func statisticsSurviveTheWire() throws {
        var statistics = ConversionStatistics()
        statistics.count(
            ConversionRecord(
                vmID: 1, vm: "v", vcpu: 0, requestedNanos: 1, completedNanos: 300_000, gpa: 0, size: 8192,
                direction: .toShared, trigger: .implicit, decision: .applied, reason: "", policyVersion: "",
                source: .kvm, discardedBytes: 0, guestResult: 0))
        statistics.count(
            MemoryFaultRecord(
                vmID: 1, vm: "v", vcpu: 0, timeNanos: 1, gpa: 0, size: 4096, flags: 0, source: .kvm, access: .read))
        statistics.countUnrecorded(.denied)
        let wire = VMStatisticsWire(statistics, exits: [("io", 3), ("hlt", 1)])
        let decoded = try #require(WireCoding.decode(VMStatisticsWire.self, from: WireCoding.encode(wire)))
        #expect(decoded.statistics == statistics)
        #expect(decoded.exitCounts.map(\.kind) == ["hlt", "io"])
    }
}
