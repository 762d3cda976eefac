import Foundation
import Glibc
import TestSupport
import Testing

/// Runs memgatectl with the given arguments; the token is passed through a file, never argv.
func ctl(_ arguments: [String], token: String = AgentProcess.adminToken, environment: [String: String?] = [:]) throws
    -> TestSupport.ProcessResult
{
    let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent(
        "memgatectl-token-\(UUID().uuidString)")
    try Data(token.utf8).write(to: tokenFile)
    defer { try? FileManager.default.removeItem(at: tokenFile) }
    // No config file or environment of the machine's leaks in unless a test sets it.
    var isolated: [String: String?] = [
        "MEMGATE_CONFIG": nil, "HOME": "/nonexistent-memgate-home", "MEMGATE_HOSTS": nil, "MEMGATE_TOKEN": nil,
    ]
    for (name, value) in environment { isolated[name] = value }
    return try TestSupport.run(
        try TestSupport.binaryPath("memgatectl"), arguments + ["--token-file", tokenFile.path], environment: isolated)
}

/// A hosts file for the given `(url, name, labels)` lines.
func hostsFile(_ lines: [String]) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("memgatectl-hosts-\(UUID().uuidString)")
        .path
    try Data(("# test fleet\n" + lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
    return path
}

/// A policy document in a file of its own, for `policy push` and `policy rollout`.
func policyFile(_ text: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
        "memgatectl-policy-\(UUID().uuidString).json"
    ).path
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return path
}

/// Where a rollout keeps its state: a database in a folder that does not exist yet.
func rolloutStateFile() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("rollout-state-\(UUID().uuidString)/rollouts.db").path
}

func jsonObject(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

/// A loopback TCP port that refuses every connection for as long as this value lives: the socket
/// is bound but never listens, so no other test's server can take the port meanwhile.
final class RefusingPort: Sendable {
    let port: UInt16
    private let socket: Int32

    init() throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        // Safety: a local sockaddr_in, passed with its own size, to bind and to getsockname.
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, bound else {
            let failure = errno
            if fd >= 0 { close(fd) }
            throw TestSupport.MissingArtifact(
                path: "127.0.0.1:0", hint: "could not bind a port to hold (errno \(failure))")
        }
        socket = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(socket) }
}

/// A TCP port nobody listened on when it was chosen (for a server the test starts there).
func closedPort() -> UInt16 {
    // Bind, read the port, close: nothing listens there afterwards.
    let probe = try? TestSupport.run(
        "/usr/bin/python3",
        ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1]); s.close()"])
    return UInt16(probe?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 9
}

/// Runs a shell command (set-up of nginx, PostgreSQL, namespaces); returns its result.
@discardableResult
func shell(_ command: String) throws -> TestSupport.ProcessResult {
    try TestSupport.run("/bin/bash", ["-c", command])
}

var isRoot: Bool { getuid() == 0 }
