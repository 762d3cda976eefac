import ArgumentParser
import BenchmarkSupport
import Foundation
import KVM
import Logging
import MemoryModel
import VMM

/// `make bench-conversions`: a guest converting one 4 KiB page back and forth,
/// explicitly (KVM_HC_MAP_GPA_RANGE over the PV port) and implicitly (wrong-alias
/// accesses), on the alias backend. The baseline is the time the same run spends
/// inside the KVM ioctls and discard syscalls it must make; the rest is the
/// agent's own work (decoding, policy, page map, recording).
@main
struct ConversionsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-conversions")

    @Option(help: "The convert-bench guest ELF.")
    var guest: String

    @Option(help: "Conversions per mode.")
    var conversions: Int = 100_000

    @Option(help: "Where to append the RESULT line.")
    var output: String = ".build/bench/results.txt"

    struct Run {
        var seconds: Double
        var kvmSeconds: Double
        var memorySeconds: Double
    }

    func run() throws {
        let system = try KVM.System()
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))
        let explicit = try measure("explicit", system: system, file: file)
        let implicit = try measure("implicit", system: system, file: file)
        for (name, run) in [("explicit", explicit), ("implicit", implicit)] {
            print(String(format: "%@: %.3f s total, %.3f s in KVM_RUN, %.3f s in memslot ioctls and discards, %.1f µs per conversion",
                         name, run.seconds, run.kvmSeconds, run.memorySeconds, run.seconds / Double(conversions) * 1e6))
        }
        let inside = explicit.kvmSeconds + explicit.memorySeconds + implicit.kvmSeconds + implicit.memorySeconds
        let share = inside / (explicit.seconds + implicit.seconds)
        let result = String(format: "RESULT conversions explicit_per_s=%.0f implicit_per_s=%.0f us_per_explicit=%.2f ioctl_share=%.3f",
                            Double(conversions) / explicit.seconds, Double(conversions) / implicit.seconds,
                            explicit.seconds / Double(conversions) * 1e6, share)
        try BenchmarkResults.append(result, to: output)
        print(result)
    }

    func measure(_ mode: String, system: KVM.System, file: [UInt8]) throws -> Run {
        var configuration = VMConfiguration(name: "bench-\(mode)")
        configuration.memoryBytes = 64 << 20
        configuration.backend = .alias
        configuration.commandLine = "\(mode) \(conversions)"
        let image = try ELFLoader.parse(file, loadable: BootLayout.imageBase..<configuration.memoryBytes)
        let events = InMemoryEventSink()
        let vm = try VirtualMachine(system: system, configuration: configuration, image: image,
                                    logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }, events: events)
        let started = ContinuousClock.now
        try vm.start()
        guard vm.waitUntilFinished(timeout: .seconds(600)) else { throw BenchmarkError("\(mode) run did not finish") }
        let elapsed = ContinuousClock.now - started
        guard vm.lifecycle.exitStatus == 0 else { throw BenchmarkError("\(mode) guest ended: \(vm.lifecycle.reason ?? "?")") }
        let converted = vm.statistics.total(decision: .applied)
        guard converted == conversions else { throw BenchmarkError("\(mode): \(converted) conversions applied, expected \(conversions)") }
        let time = vm.kvmTime
        return Run(seconds: BenchmarkResults.seconds(elapsed), kvmSeconds: Double(time.runNanos) / 1e9,
                   memorySeconds: Double(time.memoryNanos) / 1e9)
    }
}
