import ArgumentParser
import BenchmarkSupport
import EventStore
import Foundation
import Logging
import MemoryModel
import Platform
import SQLite

/// `make bench-history`: the memory of a VM with 1,000,000 recorded conversions at random past moments
/// (by event id and by time), answered from the newest checkpoint plus the conversions after it, against
/// the same answer replayed from the VM's start (the same store with its checkpoints removed), in one run.
@main
struct HistoryBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-history")

    @Option(help: "Conversions recorded for the VM.")
    var conversions: Int = 1_000_000

    @Option(help: "Random moments asked for.")
    var moments: Int = 400

    @Option(help: "Moments replayed from the start (the baseline; each reads up to every conversion).")
    var baselineMoments: Int = 5

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    func run() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-bench-history-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("history.db").path
        let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        let bounds = PageRange(start: 0x20_0000, end: 0x20_0000 + 16_384 * 4096)

        // Record: one VM, conversions of 1-4 pages at random over 64 MiB, 90% applied, both directions.
        let store = try EventStore(path: path, logger: logger)
        let vm = try store.register(
            VMRegistration(
                name: "history", memoryBytes: 1 << 27, vcpus: 1, backend: "alias", dataRAM: bounds,
                initialState: .private), createdNanos: 1)
        var random = SeededState(seed: 30)
        let started = ContinuousClock.now
        for index in 0..<conversions {
            let pages = 1 + random.next() % 4
            let page = random.next() % (16_384 - pages)
            let time = 1_000_000_000 + UInt64(index) * 1_000
            let applied = random.next() % 10 != 0
            _ = store.record(
                conversion: ConversionRecord(
                    vmID: vm, vm: "history", vcpu: 0, requestedNanos: time, completedNanos: time + 500,
                    gpa: bounds.start + page * 4096,
                    size: pages * 4096, direction: random.next() % 2 == 0 ? .toShared : .toPrivate, trigger: .explicit,
                    decision: applied ? .applied : .denied, reason: "r", policyVersion: "v", source: .emulated,
                    discardedBytes: 0, guestResult: 0))
        }
        store.flush()
        store.close()
        let recordSeconds = BenchmarkResults.seconds(ContinuousClock.now - started)
        let connection = try SQLiteConnection(path: path, readOnly: true)
        let checkpoints = try connection.scalar("SELECT count(*) FROM memory_checkpoints") ?? 0
        let checkpointBytes =
            try connection.scalar("SELECT coalesce(sum(length(runs)), 0) FROM memory_checkpoints") ?? 0
        let conversionBytes = (try? connection.scalar("SELECT sum(pgsize) FROM dbstat WHERE name = 'conversions'")) ?? 0
        let lastEvent = try connection.scalar("SELECT max(event_id) FROM conversions") ?? 0
        print(
            String(
                format:
                    "recorded %d conversions in %.1f s (%lld checkpoints of %.1f MiB in all, the conversions table %.1f MiB; last event %lld)",
                conversions, recordSeconds, checkpoints, Double(checkpointBytes) / 1_048_576,
                Double(conversionBytes) / 1_048_576, lastEvent))

        // Random moments, half by event id and half by time, each answered as the API answers it.
        let queries = EventQueries(path: path)
        var latencies: [Double] = []
        for index in 0..<moments {
            let moment: MemoryHistory.Moment =
                index % 2 == 0
                ? .event(1 + Int64(random.next() % UInt64(lastEvent)))
                : .time(1_000_000_000 + random.next() % UInt64(conversions) * 1_000)
            let begun = ContinuousClock.now
            guard case .success = try queries.pastMemory(vm: vm, at: moment) else {
                throw BenchmarkError("no state at \(moment)")
            }
            latencies.append(BenchmarkResults.seconds(ContinuousClock.now - begun) * 1000)
        }
        latencies.sort()
        let p50 = latencies[latencies.count / 2], p99 = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
        let worst = latencies.last ?? 0

        // The baseline: the same question answered by replaying every conversion from the start.
        let bare = folder.appendingPathComponent("bare.db").path
        try FileManager.default.copyItem(atPath: path, toPath: bare)
        try SQLiteConnection(path: bare).execute("DELETE FROM memory_checkpoints")
        let bareQueries = EventQueries(path: bare)
        var full: [Double] = []
        for index in 0..<baselineMoments {
            let event = lastEvent - Int64(index) * 1000
            let begun = ContinuousClock.now
            guard case .success(let replayed) = try bareQueries.pastMemory(vm: vm, at: .event(event)),
                case .success(let checkpointed) = try queries.pastMemory(vm: vm, at: .event(event)),
                replayed.map == checkpointed.map
            else {
                throw BenchmarkError("the replay from the start and the checkpointed answer differ at event \(event)")
            }
            full.append(BenchmarkResults.seconds(ContinuousClock.now - begun) * 1000)
        }
        full.sort()
        let fullMedian = full[full.count / 2]
        let result = String(
            format:
                "RESULT history conversions=%d moments=%d at_p50_ms=%.2f at_p99_ms=%.2f at_max_ms=%.2f full_replay_ms=%.1f vs_full_replay=%.4f checkpoints=%lld checkpoint_mib=%.1f",
            conversions, moments, p50, p99, worst, fullMedian, p99 / fullMedian, checkpoints,
            Double(checkpointBytes) / 1_048_576)
        try BenchmarkResults.append(result, to: output)
        print(result)
    }
}

/// SplitMix64, so the moments asked for are the same every run.
struct SeededState {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
