import APITypes
import BenchmarkSupport
import Controller
import Foundation

/// A real `memgate-agent serve` on loopback for the benchmark, driven over its REST API.
final class RunningAgent {
    let port: UInt16
    private let process = Process()
    private let transport: CurlTransport

    init(binary: String, folder: URL, database: String) throws {
        let out = folder.appendingPathComponent("\(database).out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "serve", "--listen", "127.0.0.1:0", "--db", folder.appendingPathComponent(database).path,
            "--images-dir", folder.appendingPathComponent("images").path,
            "--token-file", folder.appendingPathComponent("tokens").path, "--log-level", "error",
            "--run-dir", folder.appendingPathComponent("\(database).run").path, "--stop-vms-on-exit",
            // The 64 readers share one token (a principal's default share is 32 streams), and each
            // may hold the full 1 MiB unsent, as before the 32 MiB process-wide budget (512 KiB each).
            "--max-streams-per-principal", "64", "--stream-buffer-total", "\(64 << 20)",
        ]
        process.standardOutput = try FileHandle(forWritingTo: out)
        try process.run()
        var found: UInt16?
        for _ in 0..<3000 where found == nil && process.isRunning {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if let range = text.range(of: "serving on http://127.0.0.1:") {
                found = UInt16(text[range.upperBound...].prefix { $0.isNumber })
            } else {
                usleep(20_000)
            }
        }
        guard let found, let endpoint = Endpoint("http://127.0.0.1:\(found)") else {
            process.terminate()
            throw BenchmarkError(
                "memgate-agent serve did not start (status \(process.isRunning ? 0 : process.terminationStatus))")
        }
        port = found
        var options = TransportOptions()
        options.token = StreamBenchmark.token
        options.retries = 0
        options.totalTimeoutMilliseconds = 120_000
        options.hostDeadlineMilliseconds = 120_000
        transport = try CurlTransport(endpoints: [endpoint], options: options)
    }

    func stop() {
        guard process.isRunning else { return }
        process.interrupt()
        process.waitUntilExit()
    }

    func request(_ method: String, _ path: String, json: String? = nil) throws -> HostResponse {
        let request = HostRequest(
            host: 0, method: method, path: path, headers: json == nil ? [:] : ["Content-Type": "application/json"],
            body: json.map { Array($0.utf8) })
        switch transport.perform([request])[0] {
        case .success(let response): return response
        case .failure(let error): throw BenchmarkError("\(method) \(path): \(error)")
        }
    }

    /// Runs convert-bench for `conversions` explicit conversions and returns its conversions per
    /// second, from the agent's own start and end times of the VM.
    func convert(name: String, conversions: Int) throws -> Double {
        let created = try request(
            "POST", "/v1/vms",
            json: """
                {"name":"\(name)","image":"convert-bench.elf","command_line":"explicit \(conversions)","memory_mib":64}
                """)
        guard created.status == 201, let vm = try? APIJSON.decoder().decode(VMInfo.self, from: Data(created.body))
        else {
            throw BenchmarkError(
                "POST /v1/vms answered \(created.status): \(String(decoding: created.body, as: UTF8.self))")
        }
        while true {
            let answer = try request("GET", "/v1/vms/\(vm.id)")
            guard let now = try? APIJSON.decoder().decode(VMInfo.self, from: Data(answer.body)) else {
                throw BenchmarkError("GET /v1/vms/\(vm.id) answered \(answer.status)")
            }
            if let ended = now.endedNs, let started = now.startedNs {
                guard now.exitStatus == 0, now.conversions["applied"] == conversions else {
                    throw BenchmarkError("VM \(name) ended \(now.state): \(now.reason ?? "") (\(now.conversions))")
                }
                return Double(conversions) / (Double(ended - started) / 1e9)
            }
            usleep(20_000)
        }
    }

    /// `POST /v1/policy/replay` of `candidate`: wall milliseconds as the client saw them, and the report.
    func replay(_ candidate: String) throws -> (Double, PolicyReplayReport) {
        let started = ContinuousClock.now
        let answer = try request("POST", "/v1/policy/replay", json: candidate)
        let milliseconds = BenchmarkResults.seconds(ContinuousClock.now - started) * 1000
        guard answer.status == 200,
            let report = try? APIJSON.decoder().decode(PolicyReplayReport.self, from: Data(answer.body))
        else {
            throw BenchmarkError(
                "POST /v1/policy/replay answered \(answer.status): \(String(decoding: answer.body.prefix(300), as: UTF8.self))"
            )
        }
        return (milliseconds, report)
    }
}
