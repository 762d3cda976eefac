import ArgumentParser
import BenchmarkSupport
import Foundation
import KVM
import Logging
import VMM

/// `make bench-exitloop`: the agent's vCPU loop on the spin-io guest against
/// the bare C KVM_RUN loop on the same guest, interleaved in the same run.
@main
struct ExitLoopBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-exitloop")

    @Option(help: "The spin-io guest ELF.")
    var guest: String

    @Option(help: "The C baseline binary (Benchmarks/ExitLoop/baseline.c).")
    var baseline: String

    @Option(help: "Heartbeat exits per run.")
    var exits: Int = 1_000_000

    @Option(help: "Interleaved rounds; the median of each side is reported.")
    var rounds: Int = 3

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    func run() throws {
        let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        let system = try KVM.System()
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))
        var agentRates: [Double] = []
        var cRates: [Double] = []
        for round in 1...rounds {
            let agent = try runAgent(system: system, file: file, logger: logger)
            let c = try runBaseline()
            agentRates.append(agent)
            cRates.append(c)
            print(String(format: "round %d: agent %.0f exits/s, C %.0f exits/s", round, agent, c))
        }
        let agent = median(agentRates), c = median(cRates)
        let result = String(
            format: "RESULT exitloop agent_exits_per_s=%.0f c_exits_per_s=%.0f ratio=%.3f", agent, c, agent / c)
        try BenchmarkResults.append(result, to: output)
        print(result)
    }

    /// Exits per second through `VirtualMachine`'s vCPU loop, from start to guest exit.
    func runAgent(system: KVM.System, file: [UInt8], logger: Logger) throws -> Double {
        var configuration = VMConfiguration(name: "bench-exitloop")
        configuration.commandLine = String(exits)
        let image = try ELFLoader.parse(file, loadable: BootLayout.imageBase..<configuration.memoryBytes)
        let vm = try VirtualMachine(system: system, configuration: configuration, image: image, logger: logger)
        let started = ContinuousClock.now
        try vm.start()
        guard vm.waitUntilFinished(timeout: .seconds(600)) else { throw BenchmarkError("agent run did not finish") }
        let elapsed = ContinuousClock.now - started
        guard vm.lifecycle.exitStatus == 0 else { throw BenchmarkError("spin-io ended: \(vm.lifecycle.reason ?? "?")") }
        return Double(exits) / BenchmarkResults.seconds(elapsed)
    }

    func runBaseline() throws -> Double {
        try BenchmarkResults.runBaseline(baseline, [guest, String(exits)], field: "c_exits_per_s")
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}
