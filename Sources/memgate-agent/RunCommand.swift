import AgentHost
import ArgumentParser
import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import VMM

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest ELF, stream its console to stdout, and exit with its exit status.",
        discussion: """
            Exit status: the guest's own status when it exits through the exit port; \
            \(AgentExitCode.timeout) on --timeout, \(AgentExitCode.crashed) when the guest crashes \
            (triple fault), \(AgentExitCode.failed) when the VM fails (an exit nobody handles, a KVM error), \
            \(AgentExitCode.faulted) when a memory fault is denied by policy or has no backing, \
            \(AgentExitCode.usage) when the guest or the policy cannot be loaded. \
            When the guest faulted or converted memory, a summary goes to stderr at the end.
            """)

    @Argument(help: "A static x86-64 guest ELF built against Guests/include/memgate_guest.h.")
    var guest: String

    @Option(help: "Guest RAM in MiB (a multiple of 2).")
    var memoryMib: UInt64 = 256

    @Option(help: "Number of vCPUs.")
    var vcpus: Int = 1

    @Option(help: "Stop the guest after this many seconds.")
    var timeout: Double?

    @Option(help: "Command line handed to the guest in its boot info.")
    var arg: String = ""

    @Option(help: "Name of the VM in logs, reports and policy matching.")
    var name: String?

    @Option(help: "Initial state of data RAM: private or shared.")
    var initialState: PageState = .private

    @Option(help: "Memory backend: attributes or alias (default: attributes where the host has private memory).")
    var backend: BackendKind?

    @Option(
        help:
            "Most runs of page state data RAM may be split into; each needs a memslot or host mappings (default: what KVM allows, 4096 under protect)."
    )
    var maxRuns: Int?

    @Option(
        help:
            "How the alias backend converts: protect (mprotect of two fixed mappings) or memslot (default: what the host probe chose)."
    )
    var aliasMechanism: AliasMechanism?

    @OptionGroup var recording: RecordingOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let timeout, !(timeout > 0 && timeout <= 31_536_000) {
            throw ValidationError(
                "--timeout must be a number of seconds from above 0 to 31536000 (a year), not \(timeout)")
        }
        // The same rules as POST /v1/vms: VMSpec's, reported with the flag's name.
        do throws(AgentHostError) {
            try spec(image: []).validate()
        } catch {
            guard case .invalid(let field, let message) = error else { throw ValidationError("\(error)") }
            let flag =
                ["memory_mib": "--memory-mib", "vcpus": "--vcpus", "max_runs": "--max-runs", "name": "--name"][field]
                ?? field
            throw ValidationError("\(flag) \(message)")
        }
    }

    func run() throws {
        let logger = logging.makeLogger(label: "memgate.agent")
        let file: [UInt8]
        do {
            file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))
        } catch {
            throw AgentFailure.usage("cannot read \(guest): \(error.localizedDescription)")
        }
        let system = try openKVM()
        let (store, inForce) = try recording.openWithPolicy(command: "run", logger: logger)
        defer { store?.close() }
        try inForce.record(in: store)
        let host = AgentHost(
            system: system, store: store, policies: PolicyStore(inForce.policy), maxVMs: 1,
            recordingBudget: recording.recordBudget, logger: logger)

        var spec = spec(image: file)
        // A stdout nobody drains, a closed pipe or a full disk stops the streaming, never the VM.
        OutputDescriptor.ignoreBrokenPipe()
        let stdout = OutputDescriptor.standardOutput
        let escape = stdout.isTerminal
        spec.consoleStream = { bytes in stdout.writeAll(escape ? ConsoleEscaper.escape(bytes) : bytes) == nil }
        let vm: ManagedVM
        do {
            vm = try host.create(spec, start: true)
        } catch {
            throw AgentFailure.usage(error.errorDescription(guest: guest))
        }
        vm.waitUntilRecorded()
        // `run` holds its one VM in this process (its AgentHost has no VM processes).
        guard let machine = vm.machine else { throw AgentFailure.usage("internal: run's VM is not in this process") }
        machine.finishConsoleStream()
        if machine.droppedConsoleBytes > 0 {
            printError(
                "\(machine.droppedConsoleBytes) bytes of console output were not written to stdout (it was too slow or closed)"
            )
        }
        if let failure = host.recordingFailure {
            throw AgentFailure.recordingFailed(
                failure, what: "the VM was stopped so that nothing it did goes unrecorded")
        }
        if vm.timedOut {
            throw AgentFailure.vmEnded(
                status: AgentExitCode.timeout, message: "timeout: guest still running after \(timeout ?? 0) s; stopped")
        }
        printSummary(machine)
        let outcome = vm.lifecycle
        let reason = outcome.reason ?? "unknown reason"
        switch outcome.state {
        case .stopped where outcome.exitStatus != nil:
            // The guest's own exit status is the command's (0 included).
            if let status = outcome.exitStatus, status != 0 { throw ExitCode(status) }
        case .crashed:
            throw AgentFailure.vmEnded(status: AgentExitCode.crashed, message: "guest crashed: \(reason)")
        case .faulted:
            throw AgentFailure.vmEnded(status: AgentExitCode.faulted, message: "VM faulted: \(reason)")
        default:
            throw AgentFailure.vmEnded(status: AgentExitCode.failed, message: "VM \(outcome.state.rawValue): \(reason)")
        }
    }

    /// Faults and conversions by direction, trigger and decision, on stderr.
    func printSummary(_ vm: VirtualMachine) {
        let statistics = vm.statistics
        guard statistics.total() > 0 || !statistics.faults.isEmpty else { return }
        let states = vm.pageStates
        var lines = ["summary for VM \(vm.name) (\(vm.memoryDescription))"]
        lines += statistics.summaryLines
        lines.append("data RAM now: \(states.privateBytes) bytes private, \(states.sharedBytes) bytes shared")
        FileHandle.standardError.write(Data(lines.map { "memgate-agent: \($0)\n" }.joined().utf8))
    }

    /// The VM these flags describe; `validate` checks the same spec that `run` starts.
    private func spec(image: [UInt8]) -> VMSpec {
        var spec = VMSpec(
            name: name ?? URL(fileURLWithPath: guest).deletingPathExtension().lastPathComponent,
            imageName: guest, image: image)
        spec.memoryMib = memoryMib
        spec.vcpus = vcpus
        spec.commandLine = arg
        spec.initialState = initialState
        spec.backend = backend
        spec.maxRuns = maxRuns
        spec.aliasMechanism = aliasMechanism
        spec.timeout = timeout.map { .milliseconds(Int64($0 * 1000)) }
        return spec
    }
}

extension PageState: ExpressibleByArgument {}
extension Durability: ExpressibleByArgument {}
extension BackendKind: ExpressibleByArgument {}

extension AgentHostError {
    /// How `run` words a creation error: image errors name the file.
    func errorDescription(guest: String) -> String {
        switch self {
        case .badImage(let message): "\(guest): \(message)"
        default: description
        }
    }

}
extension AliasMechanism: ExpressibleByArgument {}
