import Foundation

/// A real `memgate-agent serve` in a temporary directory: images (every built
/// guest), an admin and a read-only token, its own store and Unix socket.
public final class AgentProcess: @unchecked Sendable {
    public static let adminToken = "test-admin-0123456789abcdef"
    public static let readOnlyToken = "test-viewer-0123456789abcdef"

    public let directory: URL
    public let port: UInt16
    public var database: String { directory.appendingPathComponent("agent.db").path }
    public var socket: String { directory.appendingPathComponent("agent.sock").path }
    public var stderrPath: String { directory.appendingPathComponent("agent.err").path }
    /// The VM processes' sockets, rings and logs (`--run-dir`).
    public var runDirectory: String { directory.appendingPathComponent("run").path }
    private let process = Process()

    /// The admin token this agent accepts (another one makes a "wrong token" host).
    public let adminSecret: String
    /// The command that starts it, for running it elsewhere (e.g. in a network namespace).
    private let launcher: [String]

    /// - Parameter leavesVMsRunning: false (most tests) adds `--stop-vms-on-exit`, so a test's VMs end with its agent;
    ///   the restart tests pass true, as operators run it.
    public init(
        extraArguments: [String] = [], directory existing: URL? = nil, adminToken: String = AgentProcess.adminToken,
        listen: String = "127.0.0.1:0", launcher: [String] = [], environment: [String: String] = [:],
        leavesVMsRunning: Bool = false, executable: String? = nil
    ) throws {
        adminSecret = adminToken
        self.launcher = launcher
        directory =
            existing
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("memgate-agent-\(UUID().uuidString)")
        let images = directory.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let guests = TestSupport.packageRoot.appendingPathComponent(".build/guests")
        for name in try FileManager.default.contentsOfDirectory(atPath: guests.path) where name.hasSuffix(".elf") {
            let target = images.appendingPathComponent(name)
            if !FileManager.default.fileExists(atPath: target.path) {
                try FileManager.default.copyItem(at: guests.appendingPathComponent(name), to: target)
            }
        }
        let tokens = directory.appendingPathComponent("tokens")
        try Data("admin admin \(adminToken)\nviewer read-only \(Self.readOnlyToken)\n".utf8).write(to: tokens)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokens.path)

        let agent = try executable ?? TestSupport.binaryPath("memgate-agent")
        self.agentBinary = agent
        process.executableURL = URL(fileURLWithPath: launcher.first ?? agent)
        process.arguments =
            Array(launcher.dropFirst()) + (launcher.isEmpty ? [] : [agent]) + [
                "serve", "--listen", listen, "--unix", directory.appendingPathComponent("agent.sock").path,
                "--db", directory.appendingPathComponent("agent.db").path, "--images-dir", images.path,
                "--token-file", tokens.path, "--run-dir", directory.appendingPathComponent("run").path,
            ]
            + (leavesVMsRunning ? [] : ["--stop-vms-on-exit"]) + extraArguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = directory.appendingPathComponent("agent.out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("agent.err").path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("agent.err"))
        try process.run()
        var found: UInt16?
        // Returns as soon as the agent says where it serves; the bound only ends a wait for one that never
        // will (under the nested host's emulation a start can take many seconds).
        for _ in 0..<6000 {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if let range = text.range(of: "serving on http://"),
                let colon = text[range.upperBound...].firstIndex(of: ":")
            {
                found = UInt16(text[text.index(after: colon)...].prefix { $0.isNumber })
                break
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        guard let found else {
            process.terminate()
            let errors = (try? String(contentsOf: directory.appendingPathComponent("agent.err"), encoding: .utf8)) ?? ""
            throw TestSupport.MissingArtifact(path: "memgate-agent serve", hint: "did not start: \(errors)")
        }
        port = found
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        stopVMProcesses()
    }

    private let agentBinary: String

    /// Ends every VM process left in the run directory (a test that killed its agent cleans up so),
    /// unless another agent now serves it (a restart test's next agent holds `agent.lock`).
    public func stopVMProcesses() {
        guard FileManager.default.fileExists(atPath: runDirectory) else { return }
        if process.isRunning { terminate() }
        let lock = open(runDirectory + "/agent.lock", O_RDWR | O_CLOEXEC)
        if lock >= 0 {
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { return }
        }
        _ = try? TestSupport.run(
            agentBinary, ["vm", "stop", "--all", "--run-dir", runDirectory, "--reason", "test cleanup"])
    }

    /// Removes the agent's directory (after it stopped).
    public func removeFiles() { try? FileManager.default.removeItem(at: directory) }

    public var pid: Int32 { process.processIdentifier }

    /// `http://127.0.0.1:PORT`.
    public var url: String { "http://127.0.0.1:\(port)" }
    public var isRunning: Bool { process.isRunning }

    /// SIGTERM, then the exit status.
    @discardableResult
    public func terminate(signal: Int32 = SIGTERM) -> Int32 {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        return process.terminationStatus
    }

    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// One request on a fresh TCP connection.
    /// `source`: the local address to send from (a 127.0.0.0/8 address: another peer network).
    public func request(
        _ method: String, _ path: String, token: String? = nil, json: String? = nil,
        headers: [String: String] = [:], source: String? = nil
    ) throws -> BlockingHTTPClient.Response {
        let client = try BlockingHTTPClient(port: port, source: source, timeoutMilliseconds: 30_000)
        var all = headers
        all["Authorization"] = "Bearer \(token ?? adminSecret)"
        if token == "" { all["Authorization"] = nil }
        if json != nil { all["Content-Type"] = "application/json" }
        return try client.request(method, path, headers: all, body: Array((json ?? "").utf8))
    }

    /// The decoded JSON object of a response body.
    public static func object(_ response: BlockingHTTPClient.Response) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
    }

    /// Polls GET /v1/vms/{id} until its state is not running/created.
    public func waitForEnd(_ id: Int, seconds: Double = 30) throws -> [String: Any] {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            let vm = Self.object(try request("GET", "/v1/vms/\(id)"))
            if let state = vm["state"] as? String, !["created", "running", "paused"].contains(state) { return vm }
            usleep(20_000)
        }
        throw TestSupport.MissingArtifact(path: "VM \(id)", hint: "did not end within \(seconds) s")
    }
}
