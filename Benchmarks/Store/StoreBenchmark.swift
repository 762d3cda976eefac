import ArgumentParser
import BenchmarkOwnProcess
import BenchmarkSupport
import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import Synchronization
import VMM

/// `make bench-store`: (1) events per second through the store with
/// commit-before-resume from two vCPU threads, against SQLite's C API inserting
/// the same rows in one transaction; (2) the conversions benchmark with
/// recording on versus off.
@main
struct StoreBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-store")

    @Option(help: "The C baseline binary (Benchmarks/Store/baseline.c).")
    var baseline: String

    @Option(help: "The migration the C baseline applies.")
    var migration: String = "Migrations/0001_initial.sql"

    @Option(help: "The convert-bench guest ELF.")
    var guest: String

    @Option(help: "Events per vCPU thread in part 1.")
    var events: Int = 20_000

    @Option(help: "Explicit conversions per run in part 2.")
    var conversions: Int = 20_000

    @Option(help: "Interleaved on/off rounds in part 2 (medians are compared).")
    var rounds: Int = 5

    @Option(help: "The memgate-agent binary: part 2 records as serve does, from a VM process through its ring.")
    var agent: String?

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    func run() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        let store = try storeEventsPerSecond(path: folder.appendingPathComponent("store.db").path)
        let c = try baselineRowsPerSecond(path: folder.appendingPathComponent("c.db").path)
        print(
            String(
                format:
                    "store: %.0f events/s with commit-before-resume from 2 threads; C: %.0f rows/s in one transaction",
                store, c))

        var on: [Double] = [], off: [Double] = []
        let system = try KVM.System()
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))
        for round in 1...rounds {
            let path = folder.appendingPathComponent("run\(round).db").path
            // Alternate which side goes first, so warm-up or leftovers of the previous VM favour neither.
            var recorded = 0.0, unrecorded = 0.0
            func recordedRun() throws -> Double {
                if let agent {
                    let outcome = try OwnProcessVM(agentBinary: agent, folder: folder, system: system)
                        .run(name: "bench-record", image: file, commandLine: "explicit \(conversions)")
                    guard outcome.state == "stopped", outcome.applied == conversions else {
                        throw BenchmarkError(
                            "bench-record ended \(outcome.state) (\(outcome.reason ?? "")), \(outcome.applied) applied")
                    }
                    return outcome.seconds
                }
                return try conversionRun(
                    system: system, file: file, store: try EventStore(path: path, logger: Self.quiet))
            }
            if round % 2 == 1 {
                recorded = try recordedRun()
                unrecorded = try conversionRun(system: system, file: file, store: nil)
            } else {
                unrecorded = try conversionRun(system: system, file: file, store: nil)
                recorded = try recordedRun()
            }
            on.append(recorded)
            off.append(unrecorded)
            print(String(format: "round %d: %.3f s recorded, %.3f s not recorded", round, recorded, unrecorded))
        }
        let overhead = median(on) / median(off) - 1
        let perRound = zip(on, off).map { String(format: "%.3f", $0 / $1 - 1) }.joined(separator: ",")
        let result = String(
            format: "RESULT store events_per_s=%.0f c_rows_per_s=%.0f record_overhead=%.3f vm_process=%@ rounds=%@",
            store, c, overhead, agent == nil ? "agent" : "own", perRound)
        try BenchmarkResults.append(result, to: output)
        print(result)
    }

    static let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }

    /// Two threads each record `events` conversions and wait for each commit, as vCPUs do.
    func storeEventsPerSecond(path: String) throws -> Double {
        let store = try EventStore(path: path, logger: Self.quiet)
        let vmID = try store.register(
            VMRegistration(
                name: "bench", memoryBytes: 32 << 20, vcpus: 2, backend: "alias",
                dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
            createdNanos: MonotonicClock.wallNanos())
        let done = Mutex(0)
        let started = ContinuousClock.now
        for vcpu in 0..<2 {
            Thread { [events] in
                for i in 0..<events {
                    let now = MonotonicClock.wallNanos()
                    let record = ConversionRecord(
                        vmID: vmID, vm: "bench", vcpu: UInt32(vcpu), requestedNanos: now, completedNanos: now + 1000,
                        gpa: 0x20_0000 + UInt64(i % 64) * 4096, size: 4096, direction: .toShared, trigger: .explicit,
                        decision: .denied, reason: "rule 0 (deny)", policyVersion: VersionedPolicy.builtIn.version,
                        source: .emulated, discardedBytes: 0, guestResult: -1)
                    store.record(conversion: record).wait()
                }
                done.withLock { $0 += 1 }
            }.start()
        }
        while done.withLock({ $0 }) < 2 { usleep(1000) }
        let elapsed = BenchmarkResults.seconds(ContinuousClock.now - started)
        print("store: \(store.commitCount) commits for \(2 * events) events")
        store.close()
        return Double(2 * events) / elapsed
    }

    func baselineRowsPerSecond(path: String) throws -> Double {
        try BenchmarkResults.runBaseline(baseline, [path, migration, String(2 * events)], field: "c_rows_per_s")
    }

    /// Seconds for `conversions` explicit conversions, recorded into `store` or not at all.
    func conversionRun(system: KVM.System, file: [UInt8], store: EventStore?) throws -> Double {
        var configuration = VMConfiguration(name: "bench-record")
        configuration.memoryBytes = 64 << 20
        configuration.backend = .alias
        configuration.commandLine = "explicit \(conversions)"
        configuration.id = store?.reserveVMID() ?? 0
        let image = try ELFLoader.parse(file, loadable: BootLayout.imageBase..<configuration.memoryBytes)
        let vm = try VirtualMachine(
            system: system, configuration: configuration, image: image, logger: Self.quiet,
            events: store ?? InMemoryEventSink())
        try store?.register(
            VMRegistration(
                name: "bench-record", memoryBytes: configuration.memoryBytes, vcpus: 1,
                backend: "alias", dataRAM: vm.pageStates.bounds, initialState: .private),
            id: configuration.id, createdNanos: MonotonicClock.wallNanos())
        let started = ContinuousClock.now
        try vm.start()
        guard vm.waitUntilFinished(timeout: .seconds(600)), vm.lifecycle.exitStatus == 0 else {
            throw BenchmarkError("conversion run failed: \(vm.lifecycle.reason ?? "timeout")")
        }
        let elapsed = BenchmarkResults.seconds(ContinuousClock.now - started)
        store?.close()
        return elapsed
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}
