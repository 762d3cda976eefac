import AgentHost
import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import VMM
import VMProcess

/// A guest run as `serve` runs it: in a VM process of its own (the memgate-agent binary),
/// recording into its ring, drained by an `AgentHost` into a real store. Shared by the
/// benchmarks that compare it with the VM inside the benchmark's process.
public struct OwnProcessVM {
    public let agentBinary: String
    public let folder: URL
    public let system: KVM.System

    public init(agentBinary: String, folder: URL, system: KVM.System) {
        self.agentBinary = agentBinary
        self.folder = folder
        self.system = system
    }

    static let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }

    public struct Outcome {
        /// From the start request to the end committed in the store.
        public var seconds: Double
        public var applied: Int
        public var state: String
        public var reason: String?
    }

    /// Creates, starts and waits for one VM; everything it recorded is committed when this returns.
    public func run(name: String, image: [UInt8], commandLine: String, memoryMib: UInt64 = 64, vcpus: Int = 1) throws
        -> Outcome
    {
        let round = folder.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: round, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: round) }
        let store = try EventStore(
            path: round.appendingPathComponent("agent.db").path, closeLostVMs: false, logger: Self.quiet)
        defer { store.close() }
        let options = VMProcessOptions(
            runDirectory: try RunDirectory(path: round.appendingPathComponent("run").path),
            executable: agentBinary, logLevel: "error")
        let host = AgentHost(
            system: system, store: store, policies: PolicyStore(), processes: options, logger: Self.quiet)
        defer { host.shutdown(reason: "benchmark over", stopVMs: true) }
        var spec = VMSpec(name: name, imageName: name, image: image)
        spec.memoryMib = memoryMib
        spec.vcpus = vcpus
        spec.commandLine = commandLine
        spec.backend = .alias
        spec.aliasMechanism = .protect
        let vm = try host.create(spec, start: false)
        let started = ContinuousClock.now
        try host.start(vm.id)
        vm.waitUntilRecorded()
        let elapsed = ContinuousClock.now - started
        let snapshot = vm.snapshot
        return Outcome(
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            applied: snapshot.conversionsByDecision["applied"] ?? 0, state: snapshot.state,
            reason: snapshot.lifecycle.reason)
    }
}
