import Foundation
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

/// A TCP port nobody listens on.
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
