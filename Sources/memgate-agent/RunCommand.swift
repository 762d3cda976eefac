import ArgumentParser
import Foundation
import KVM
import VMM

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest ELF, stream its console to stdout, and exit with its exit status.",
        discussion: """
            Exit status: the guest's own status when it exits through the exit port; \
            \(AgentExitCode.timeout) on --timeout, \(AgentExitCode.crashed) when the guest crashes \
            (triple fault), \(AgentExitCode.failed) when the VM fails (an exit nobody handles, a KVM error), \
            \(AgentExitCode.usage) when the guest cannot be loaded.
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

    @Option(help: "Name of the VM in logs and reports.")
    var name: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard memoryMib > 0, memoryMib % 2 == 0 else { throw ValidationError("--memory-mib must be a positive multiple of 2") }
        guard vcpus > 0 else { throw ValidationError("--vcpus must be at least 1") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let logger = logging.makeLogger(label: "memgate.agent")
        let file: [UInt8]
        do {
            file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: guest)))
        } catch {
            printError("cannot read \(guest): \(error.localizedDescription)")
            throw ExitCode(AgentExitCode.usage)
        }
        let system = try openKVM()
        var configuration = VMConfiguration(name: name ?? URL(fileURLWithPath: guest).deletingPathExtension().lastPathComponent)
        configuration.memoryBytes = memoryMib << 20
        configuration.vcpuCount = vcpus
        configuration.commandLine = arg

        let image: GuestImage
        do {
            image = try ELFLoader.parse(file, loadable: BootLayout.imageBase..<configuration.memoryBytes)
        } catch {
            printError("\(guest): \(error)")
            throw ExitCode(AgentExitCode.usage)
        }
        let stdout = FileHandle.standardOutput
        let vm: VirtualMachine
        do {
            vm = try VirtualMachine(system: system, configuration: configuration, image: image, logger: logger,
                                    consoleStream: { stdout.write(Data($0)) })
            try vm.start()
        } catch {
            printError("\(error)")
            throw ExitCode(AgentExitCode.usage)
        }

        let finished = vm.waitUntilFinished(timeout: timeout.map { .milliseconds(Int64($0 * 1000)) })
        if !finished {
            vm.stop(reason: "timeout")
            printError("timeout: guest still running after \(timeout ?? 0) s; stopped")
            throw ExitCode(AgentExitCode.timeout)
        }
        let outcome = vm.lifecycle
        switch outcome.state {
        case .stopped where outcome.exitStatus != nil:
            throw ExitCode(outcome.exitStatus!)
        case .crashed:
            printError("guest crashed: \(outcome.reason ?? "unknown reason")")
            throw ExitCode(AgentExitCode.crashed)
        default:
            printError("VM \(outcome.state.rawValue): \(outcome.reason ?? "unknown reason")")
            throw ExitCode(AgentExitCode.failed)
        }
    }
}
