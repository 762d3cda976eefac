import APITypes
import ArgumentParser
import BenchmarkSupport
import Controller
import EventStore
import Foundation
import Logging
import MemoryModel
import Platform

/// `make bench-stream`: (1) a guest converting as fast as it can on a real agent, with
/// 64 event streams open (read by `readers.c`) and with none, in interleaved rounds:
/// how fast events reach the readers, how late (p99), and what the streams cost the
/// guest; (2) `POST /v1/policy/replay` of a candidate over 1,000,000 recorded conversions.
@main
struct StreamBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-stream")

    @Option(help: "The memgate-agent binary (a release build).")
    var agent: String

    @Option(help: "The stream readers (Benchmarks/Stream/readers.c, built).")
    var readers: String

    @Option(help: "The convert-bench guest ELF.")
    var guest: String

    @Option(help: "Streams open while the guest converts.")
    var streams: Int = 64

    @Option(help: "Explicit conversions per run.")
    var conversions: Int = 100_000

    @Option(help: "Interleaved with/without-streams rounds (medians are compared).")
    var rounds: Int = 5

    @Option(help: "Recorded conversions the replay decides again.")
    var replayConversions: Int = 1_000_000

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    static let token = "bench-stream-0123456789abcdef"
    static let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }

    func validate() throws {
        guard (1...4096).contains(streams) else { throw ValidationError("--streams must be 1-4096") }
        guard (1_000...10_000_000).contains(conversions) else {
            throw ValidationError("--conversions must be 1000-10000000")
        }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be 1-20") }
        guard (1_000...20_000_000).contains(replayConversions) else {
            throw ValidationError("--replay-conversions must be 1000-20000000")
        }
    }

    func run() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-bench-stream-\(getpid())")
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("images"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(
            atPath: guest, toPath: folder.appendingPathComponent("images/convert-bench.elf").path)
        let tokens = folder.appendingPathComponent("tokens")
        try Data("bench admin \(Self.token)\n".utf8).write(to: tokens)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokens.path)

        // Part 1: streams while a guest converts.
        let live = try RunningAgent(binary: agent, folder: folder, database: "live.db")
        defer { live.stop() }
        var with: [StreamRun] = [], without: [Double] = []
        for round in 1...rounds {
            // Alternate which side goes first, so neither gains from the other's leftovers.
            for streamed in round % 2 == 1 ? [true, false] : [false, true] {
                if streamed {
                    let run = try streamedRun(live, name: "streamed-\(round)")
                    with.append(run)
                    print(
                        String(
                            format:
                                "round %d: %.0f conversions/s with %d streams; %.0f events/s delivered, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d overflows",
                            round, run.conversionsPerSecond, streams, run.eventsPerSecond, run.p50ms, run.p99ms,
                            run.maxms, run.overflows))
                } else {
                    let rate = try live.convert(name: "alone-\(round)", conversions: conversions)
                    without.append(rate)
                    print(String(format: "round %d: %.0f conversions/s with no stream", round, rate))
                }
            }
        }
        live.stop()

        // Part 2: a replay over a million recorded conversions, on an agent restarted on them.
        let replayDB = folder.appendingPathComponent("replay.db").path
        let recordStarted = ContinuousClock.now
        try RecordedHistory.write(conversions: replayConversions, to: replayDB, logger: Self.quiet)
        print(
            String(
                format: "recorded %d conversions for the replay in %.1f s", replayConversions,
                BenchmarkResults.seconds(ContinuousClock.now - recordStarted)))
        let archive = try RunningAgent(binary: agent, folder: folder, database: "replay.db")
        defer { archive.stop() }
        var replayTimes: [Double] = []
        var replayed = 0
        for attempt in 1...3 {
            let (milliseconds, report) = try archive.replay(RecordedHistory.candidate)
            replayTimes.append(milliseconds)
            replayed = report.requests
            print(
                String(
                    format: "replay %d: %d requests in %.0f ms, %d decided differently (%@)", attempt, report.requests,
                    milliseconds,
                    report.changed, report.transitions.map { "\($0.from)→\($0.to) \($0.count)" }.joined(separator: ", ")
                ))
        }
        archive.stop()

        let ratio = median(with.map(\.conversionsPerSecond)) / median(without)
        let result = String(
            format:
                "RESULT stream events_per_s=%.0f deliver_p99_ms=%.2f streams=%d conversions_vs_nostream=%.3f replay_events=%d replay_ms=%.0f",
            median(with.map(\.eventsPerSecond)), median(with.map(\.p99ms)), streams, ratio, replayed,
            median(replayTimes))
        try BenchmarkResults.append(result, to: output)
        print(result)
    }

    /// One run with `streams` readers connected before the VM starts; fails unless every
    /// reader got every conversion of the VM and its end, with no overflow.
    func streamedRun(_ agent: RunningAgent, name: String) throws -> StreamRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: readers)
        process.arguments = [String(agent.port), Self.token, String(streams)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let lines = LineReader(pipe.fileHandleForReading)
        guard lines.next() == "ready" else {
            process.waitUntilExit()
            throw BenchmarkError("the readers did not connect (status \(process.terminationStatus))")
        }
        let rate = try agent.convert(name: name, conversions: conversions)
        let summary = lines.next() ?? ""
        process.waitUntilExit()
        let fields = Dictionary(
            summary.split(separator: " ").compactMap { pair -> (String, Double)? in
                let parts = pair.split(separator: "=")
                guard parts.count == 2, let value = Double(parts[1]) else { return nil }
                return (String(parts[0]), value)
            }, uniquingKeysWith: { $1 })
        guard process.terminationStatus == 0, let events = fields["events"], let complete = fields["complete"],
            let fewest = fields["min_stream"], let overflows = fields["overflows"], let p50 = fields["p50_us"],
            let p99 = fields["p99_us"], let maxUs = fields["max_us"], let first = fields["first_ns"],
            let last = fields["last_ns"]
        else {
            throw BenchmarkError("the readers failed (status \(process.terminationStatus)): \(summary)")
        }
        guard Int(complete) == streams, Int(fewest) == conversions, overflows == 0 else {
            throw BenchmarkError("not every stream got every event: \(summary)")
        }
        let seconds = max((last - first) / 1e9, 1e-9)
        return StreamRun(
            conversionsPerSecond: rate, eventsPerSecond: events / seconds, p50ms: p50 / 1000, p99ms: p99 / 1000,
            maxms: maxUs / 1000, overflows: Int(overflows))
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}

struct StreamRun {
    var conversionsPerSecond: Double
    var eventsPerSecond: Double
    var p50ms: Double
    var p99ms: Double
    var maxms: Double
    var overflows: Int
}

/// Lines of a child's stdout, one at a time.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []

    init(_ handle: FileHandle) { self.handle = handle }

    func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return buffer.isEmpty ? nil : String(decoding: buffer, as: UTF8.self) }
            buffer += chunk
        }
    }
}
