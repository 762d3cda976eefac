import AgentHost
import ArgumentParser
import BenchmarkSupport
import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import VMM
import VMProcess

/// `make bench-lifecycle`: (1) VM create → the guest's first conversion handled, p50 and p99
/// over 100 VMs, in a VM process of its own (as serve runs it) against inside the agent's
/// process (as before), interleaved; (2) an agent restart with 32 running VMs: how long the
/// next agent takes to adopt them all, each checked and its ring draining.
@main
struct LifecycleBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-lifecycle")

    @Option(help: "The memgate-agent binary (the VM processes run it).")
    var agent: String

    @Option(help: "The convert-bench guest ELF.")
    var guest: String

    @Option(help: "VMs created per series in part 1.")
    var vms: Int = 100

    @Option(help: "Running VMs the restarted agent adopts in part 2.")
    var adopt: Int = 32

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    static let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }

    func run() throws {
        guard (1...1000).contains(vms), (1...256).contains(adopt) else {
            throw ValidationError("--vms from 1 to 1000, --adopt from 1 to 256")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-bench-lifecycle-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let system = try KVM.System()
        let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))

        var own: [Double] = [], inside: [Double] = []
        try withHost(system: system, folder: folder, name: "own", processes: true) { host, runDirectory in
            try withHost(system: system, folder: folder, name: "inside", processes: false) { insideHost, _ in
                for index in 0..<vms {
                    own.append(try firstConversion(host: host, image: image, name: "own-\(index)", ring: runDirectory))
                    inside.append(
                        try firstConversion(host: insideHost, image: image, name: "inside-\(index)", ring: nil))
                }
            }
        }
        let adoption = try adoptionSeconds(system: system, folder: folder, image: image)
        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)] * 1000
        }
        let result = String(
            format:
                "RESULT lifecycle vms=%d own_p50_ms=%.2f own_p99_ms=%.2f in_process_p50_ms=%.2f in_process_p99_ms=%.2f adopt_vms=%d adopt_s=%.3f",
            vms, percentile(own, 0.5), percentile(own, 0.99), percentile(inside, 0.5), percentile(inside, 0.99), adopt,
            adoption)
        try BenchmarkResults.append(result, to: output)
        print(result)
    }

    /// An agent's host on its own store (and run directory, with VM processes).
    func withHost(
        system: KVM.System, folder: URL, name: String, processes: Bool,
        _ body: (AgentHost, RunDirectory?) throws -> Void
    ) throws {
        let store = try EventStore(
            path: folder.appendingPathComponent("\(name).db").path, closeLostVMs: false, logger: Self.quiet)
        defer { store.close() }
        let runDirectory = processes ? try RunDirectory(path: folder.appendingPathComponent("\(name).run").path) : nil
        let options = runDirectory.map { VMProcessOptions(runDirectory: $0, executable: agent, logLevel: "error") }
        let host = AgentHost(
            system: system, store: store, policies: PolicyStore(), maxVMs: 256, processes: options, logger: Self.quiet)
        defer { host.shutdown(reason: "benchmark over", stopVMs: true) }
        try body(host, runDirectory)
    }

    func spec(_ name: String, image: [UInt8], commandLine: String) -> VMSpec {
        var spec = VMSpec(name: name, imageName: "convert-bench.elf", image: image)
        spec.memoryMib = 16
        spec.commandLine = commandLine
        spec.backend = .alias
        return spec
    }

    /// Seconds from the create request to the guest's first conversion handled (its first record
    /// in the VM's ring, or the first exit of a VM inside the agent).
    func firstConversion(host: AgentHost, image: [UInt8], name: String, ring directory: RunDirectory?) throws -> Double
    {
        let started = ContinuousClock.now
        let vm = try host.create(spec(name, image: image, commandLine: "explicit 100000000"), start: true)
        var ring: VMRing?
        while true {
            if let directory {
                ring = try ring ?? VMRing.open(path: directory.ringPath(vm.id), vmID: vm.id)
                // Past the start record: the guest's first conversion is in the ring.
                if let ring, ring.writePosition > 64 { break }
            } else if let machine = vm.machine, machine.exitCounts.contains(where: { $0.count > 0 }) {
                break
            }
            usleep(20)
        }
        let elapsed = ContinuousClock.now - started
        try host.stop(vm.id, reason: "measured")
        try host.delete(vm.id)
        return BenchmarkResults.seconds(elapsed)
    }

    /// Starts `adopt` converting VMs under one agent, leaves them running as an agent exit does,
    /// and times the next agent's adoption of them all (pid, ring header, handshake, drain started).
    func adoptionSeconds(system: KVM.System, folder: URL, image: [UInt8]) throws -> Double {
        let database = folder.appendingPathComponent("adopt.db").path
        let runDirectory = try RunDirectory(path: folder.appendingPathComponent("adopt.run").path)
        let options = VMProcessOptions(runDirectory: runDirectory, executable: agent, logLevel: "error")
        do {
            let store = try EventStore(path: database, closeLostVMs: false, logger: Self.quiet)
            let first = AgentHost(
                system: system, store: store, policies: PolicyStore(), maxVMs: 256, processes: options,
                logger: Self.quiet)
            for index in 0..<adopt {
                _ = try first.create(
                    spec("adopted-\(index)", image: image, commandLine: "explicit 100000000"), start: true)
            }
            first.shutdown(reason: "restart", stopVMs: false)
            store.close()
        }
        let started = ContinuousClock.now
        let store = try EventStore(path: database, closeLostVMs: false, logger: Self.quiet)
        defer { store.close() }
        let next = AgentHost(
            system: system, store: store, policies: PolicyStore(), maxVMs: 256, processes: options, logger: Self.quiet)
        let report = try next.adopt()
        let elapsed = BenchmarkResults.seconds(ContinuousClock.now - started)
        defer { next.shutdown(reason: "benchmark over", stopVMs: true) }
        guard report.adopted.count == adopt else {
            throw BenchmarkError(
                "adopted \(report.adopted.count) of \(adopt) VMs (closed \(report.closed), ended \(report.ended), refused \(report.refused))"
            )
        }
        print(
            String(format: "adopted %d running VMs in %.3f s (store opened, each checked and draining)", adopt, elapsed)
        )
        return elapsed
    }
}
