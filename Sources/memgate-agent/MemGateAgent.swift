import APITypes
import ArgumentParser

struct MemGateAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memgate-agent",
        abstract: "Runs confidential-style guests on KVM and governs their memory conversions.",
        version: BuildInfo.version,
        subcommands: [ServeCommand.self, RunCommand.self, CapsCommand.self, DatabaseCommand.self, VMCommand.self])
}
