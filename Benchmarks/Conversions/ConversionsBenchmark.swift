import ArgumentParser
import BenchmarkOwnProcess
import BenchmarkSupport
import Foundation
import KVM
import Logging
import MemoryModel
import VMM

/// `make bench-conversions`: a guest converting 4 KiB pages back and forth on
/// the alias backend, explicitly (KVM_HC_MAP_GPA_RANGE over the PV port) and
/// implicitly (wrong-alias accesses), under the `protect` and `memslot`
/// mechanisms, on one vCPU and on two (each its own page). The floor is a bare
/// C VMM (Benchmarks/Conversions/floor.c) running the same guest loop with one
/// port exit and the same mprotect and discard calls per conversion and
/// nothing else, measured in the same run.
@main
struct ConversionsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-conversions")

    @Option(help: "The convert-bench guest ELF.")
    var guest: String

    @Option(help: "The C floor binary (Benchmarks/Conversions/floor.c).")
    var floor: String

    @Option(help: "Conversions per protect run (per vCPU).")
    var conversions: Int = 100_000

    @Option(help: "Conversions of the memslot run (about 20× slower).")
    var memslotConversions: Int = 20_000

    @Option(help: "Interleaved rounds; the best of each series is reported.")
    var rounds: Int = 3

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    @Option(
        help: "The memgate-agent binary: the explicit series also runs in a VM process of its own, as serve runs it.")
    var agent: String?

    @Flag(
        help:
            "The private-memory run (make bench-privmem, inside the nested host): the attributes backend against alias (protect) and a bare C floor doing KVM_SET_MEMORY_ATTRIBUTES and the discard."
    )
    var privmem = false

    struct Run {
        var perSecond: Double
        var detail: String
    }

    func run() throws {
        guard (1...10_000_000).contains(conversions), (1...10_000_000).contains(memslotConversions),
            (1...20).contains(rounds)
        else {
            throw ValidationError(
                "--conversions and --memslot-conversions must be from 1 to 10000000, --rounds from 1 to 20")
        }
        let system = try KVM.System()
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))
        if privmem { return try runPrivmem(system: system, file: file) }
        var best: [String: Run] = [:]
        func keep(_ name: String, _ run: Run) {
            print(String(format: "%@: %.0f conversions/s (%@)", name, run.perSecond, run.detail))
            if run.perSecond > best[name]?.perSecond ?? 0 { best[name] = run }
        }
        // Interleaved, so drift on this shared host favours no series.
        for _ in 1...rounds {
            let explicit = try measure(
                system: system, file: file, mode: "explicit", mechanism: .protect, vcpus: 1, count: conversions)
            keep("explicit", explicit.run)
            keep("floor", try runFloor(store: explicit.floorStore))
            keep(
                "implicit",
                try measure(
                    system: system, file: file, mode: "implicit", mechanism: .protect, vcpus: 1, count: conversions
                ).run)
            keep(
                "smp2",
                try measure(
                    system: system, file: file, mode: "explicit", mechanism: .protect, vcpus: 2, count: conversions
                ).run)
            keep(
                "memslot",
                try measure(
                    system: system, file: file, mode: "explicit", mechanism: .memslot, vcpus: 1,
                    count: memslotConversions
                ).run)
            if let agent { keep("own", try measureOwnProcess(agent: agent, system: system, file: file)) }
        }
        func rate(_ name: String) -> Double { best[name]?.perSecond ?? 0 }
        let result = String(
            format:
                "RESULT conversions explicit_per_s=%.0f implicit_per_s=%.0f memslot_explicit_per_s=%.0f smp2_per_s=%.0f floor_per_s=%.0f vs_floor=%.3f vs_memslot=%.2f",
            rate("explicit"), rate("implicit"), rate("memslot"), rate("smp2"), rate("floor"),
            rate("explicit") / rate("floor"), rate("explicit") / rate("memslot"))
        try BenchmarkResults.append(result, to: output)
        print(result)
        if agent != nil {
            // As serve runs it: the VM in its own process, every conversion recorded through its ring into SQLite.
            let own = String(
                format:
                    "RESULT conversions vm_process=own explicit_per_s=%.0f in_process_per_s=%.0f floor_per_s=%.0f vs_floor=%.3f vs_in_process=%.3f",
                rate("own"), rate("explicit"), rate("floor"), rate("own") / rate("floor"),
                rate("own") / rate("explicit"))
            try BenchmarkResults.append(own, to: output)
            print(own)
        }
    }

    /// The explicit series in a VM process of its own, recorded into a store as serve records it.
    func measureOwnProcess(agent: String, system: KVM.System, file: [UInt8]) throws -> Run {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-bench-own-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let outcome = try OwnProcessVM(agentBinary: agent, folder: folder, system: system)
            .run(name: "bench-own", image: file, commandLine: "explicit \(conversions)")
        guard outcome.state == "stopped", outcome.applied == conversions else {
            throw BenchmarkError(
                "bench-own ended \(outcome.state) (\(outcome.reason ?? "")) with \(outcome.applied) conversions applied"
            )
        }
        return Run(
            perSecond: Double(conversions) / outcome.seconds,
            detail: String(format: "own process, recorded through its ring, %.2f s", outcome.seconds))
    }

    /// One agent VM; returns its rate and which private store the floor must use to match it.
    func measure(
        system: KVM.System, file: [UInt8], mode: String, mechanism: AliasMechanism, vcpus: Int,
        count: Int, backend: BackendKind = .alias
    ) throws -> (run: Run, floorStore: String) {
        var configuration = VMConfiguration(name: "bench-\(mode)-\(backend)-\(mechanism)-\(vcpus)")
        configuration.memoryBytes = 64 << 20
        configuration.vcpuCount = vcpus
        configuration.backend = backend
        configuration.aliasMechanism = mechanism
        configuration.commandLine = "\(mode) \(count)"
        let image = try ELFLoader.parse(file, loadable: BootLayout.imageBase..<configuration.memoryBytes)
        let vm = try VirtualMachine(
            system: system, configuration: configuration, image: image,
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, events: InMemoryEventSink())
        let switchesBefore = Self.contextSwitches()
        let started = ContinuousClock.now
        try vm.start()
        guard vm.waitUntilFinished(timeout: .seconds(600)) else {
            throw BenchmarkError("\(configuration.name) did not finish")
        }
        let seconds = BenchmarkResults.seconds(ContinuousClock.now - started)
        guard vm.lifecycle.exitStatus == 0 else {
            throw BenchmarkError("\(configuration.name) ended: \(vm.lifecycle.reason ?? "?")")
        }
        let converted = vm.statistics.total(decision: .applied)
        guard converted == count * vcpus else {
            throw BenchmarkError("\(configuration.name): \(converted) conversions applied, expected \(count * vcpus)")
        }
        let time = vm.kvmTime
        let exits = vm.exitCounts.reduce(UInt64(0)) { $0 + $1.count }
        let switches = Self.contextSwitches() - switchesBefore
        let detail = String(
            format:
                "%@, %.2f s, %.1f µs each, %.2f exits and %.2f context switches each, %.0f%% in KVM_RUN, %.0f%% in mprotect/memslot/discard calls",
            vm.memoryDescription, seconds, seconds / Double(converted) * 1e6 * Double(vcpus),
            Double(exits) / Double(converted),
            Double(switches) / Double(converted),
            Double(time.runNanos) / 1e9 / seconds / Double(vcpus) * 100,
            Double(time.memoryNanos) / 1e9 / seconds / Double(vcpus) * 100)
        let store =
            vm.memoryDescription.contains("bound with")
            ? "gmem-bound"
            : vm.memoryDescription.contains("guest_memfd mapped") ? "gmem-mapped" : "memfd"
        return (Run(perSecond: Double(converted) / seconds, detail: detail), store)
    }

    /// `make bench-privmem`: explicit conversions on the attributes backend (a sw_protected VM)
    /// and on alias (protect), the C floor with KVM_SET_MEMORY_ATTRIBUTES, and real exit-39s handled.
    func runPrivmem(system: KVM.System, file: [UInt8]) throws {
        var best: [String: Run] = [:]
        func keep(_ name: String, _ run: Run) {
            print(String(format: "%@: %.0f conversions/s (%@)", name, run.perSecond, run.detail))
            if run.perSecond > best[name]?.perSecond ?? 0 { best[name] = run }
        }
        for _ in 1...rounds {
            keep(
                "attributes",
                try measure(
                    system: system, file: file, mode: "explicit", mechanism: .protect, vcpus: 1, count: conversions,
                    backend: .attributes
                ).run)
            keep("floor", try runFloor(store: "attributes"))
            keep(
                "alias",
                try measure(
                    system: system, file: file, mode: "explicit", mechanism: .protect, vcpus: 1, count: conversions
                ).run)
        }
        let exit39 = try exit39Handled(system: system)
        func rate(_ name: String) -> Double { best[name]?.perSecond ?? 0 }
        let kernel =
            (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines) ?? "unknown"
        let result = String(
            format:
                "RESULT privmem kernel=%@ vm_type=sw_protected attributes_per_s=%.0f alias_per_s=%.0f floor_per_s=%.0f vs_floor=%.3f exit39_handled=%llu",
            kernel, rate("attributes"), rate("alias"), rate("floor"), rate("attributes") / rate("floor"), exit39)
        try BenchmarkResults.append(result, to: output)
        print(result)
    }

    /// Real KVM_EXIT_MEMORY_FAULTs the agent handled: a VM whose private pages lost their
    /// guest_memfd (each access is one, until the VM is stopped as stuck).
    func exit39Handled(system: KVM.System) throws -> UInt64 {
        var configuration = VMConfiguration(name: "bench-exit39")
        configuration.memoryBytes = 32 << 20
        configuration.backend = .attributes
        let implicit = [UInt8](
            try Data(
                contentsOf: URL(fileURLWithPath: guest).deletingLastPathComponent().appendingPathComponent(
                    "implicit.elf")))
        let image = try ELFLoader.parse(implicit, loadable: BootLayout.imageBase..<configuration.memoryBytes)
        let vm = try VirtualMachine(
            system: system, configuration: configuration, image: image,
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, events: InMemoryEventSink())
        guard let backend = vm.engine.backend as? AttributesBackend else {
            throw BenchmarkError("bench-exit39 is not on the attributes backend")
        }
        try backend.removePrivateStore()
        try vm.start()
        guard vm.waitUntilFinished(timeout: .seconds(120)) else { throw BenchmarkError("bench-exit39 did not finish") }
        return vm.exitCounts.first { $0.kind == "memory_fault" }?.count ?? 0
    }

    /// Context switches of every thread of this process so far (/proc/self/task/*/status).
    static func contextSwitches() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.reduce(0) { total, task in
            let status = (try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8)) ?? ""
            return total
                + status.split(separator: "\n").filter { $0.contains("ctxt_switches:") }
                .compactMap { $0.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
                .reduce(0, +)
        }
    }

    func runFloor(store: String) throws -> Run {
        let rate = try BenchmarkResults.runBaseline(
            floor, [guest, "explicit", String(conversions), store], field: "floor_per_s")
        return Run(perSecond: rate, detail: "bare C VMM, private store \(store)")
    }
}
