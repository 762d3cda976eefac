import APITypes
import ArgumentParser
import Foundation
import Platform

struct MemgateCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memgatectl",
        abstract: "Query and steer many memgate-agents at once.",
        discussion: """
            Hosts come from --hosts FILE (one `URL [NAME] [key=value ...]` a line), --host URL (repeatable), \
            MEMGATE_HOSTS, or the context; the token from --token-file, MEMGATE_TOKEN, or the context. Contexts \
            (named fleets, as kubeconfig's) live in $MEMGATE_CONFIG, else ~/.config/memgate/config.json: \
            memgatectl config get-contexts | current-context | use-context NAME | set-context NAME; --context NAME \
            picks one for a command. Output: -o table | wide | json | yaml | name | jsonpath=EXPR (-ojson works too). \
            Completions: memgatectl completion bash | zsh | fish. Exit status: 0 when every host answered, 1 when \
            some did not (each row says why), 2 for a usage error.
            """,
        version: BuildInfo.version,
        subcommands: [
            HostsCommand.self, VMsCommand.self, FaultsCommand.self, ConversionsCommand.self, EventsCommand.self,
            VMCommand.self, MemoryCommand.self, PolicyCommand.self, AuditCommand.self, ConfigCommand.self,
            CompletionCommand.self,
        ])
}

/// The one place errors become a message and an exit status: 2 for a usage error (as
/// memgate-agent; ArgumentParser's own default is 64), 1 when a host or the command failed.
@main
enum Main {
    static func main() {
        let arguments = OutputFormat.attachedValuesSeparated(Array(CommandLine.arguments.dropFirst()))
        if let message = SubcommandSuggestion.check(arguments, root: MemgateCtl.self) {
            Out.error(message)
            exit(CtlFailure.usageStatus)
        }
        // Thousands of hosts' connections (and a wave's event streams) need more than 1024 descriptors.
        ProcessLimits.raiseFileLimit()
        do {
            var command = try MemgateCtl.parseAsRoot(arguments)
            try command.run()
        } catch let failure as CtlFailure {
            if let message = failure.message { Out.error(message) }
            exit(failure.status)
        } catch {
            if MemgateCtl.exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((MemgateCtl.fullMessage(for: error) + "\n").utf8))
                exit(CtlFailure.usageStatus)
            }
            MemgateCtl.exit(withError: error)
        }
    }
}

/// Why a memgatectl command did not succeed.
enum CtlFailure: Error {
    /// A usage problem found after parsing (a bad hosts file, a missing token): exit 2.
    case usage(String)
    /// The command could not do its work (a file it cannot write, a host that failed): exit 1.
    case failed(String)
    /// Some hosts failed; each was already reported on its row or on stderr: exit 1.
    case hostsFailed
    /// `policy diff` found differences (as diff(1)): exit 1, nothing more to say.
    case differences

    static let usageStatus: Int32 = 2

    var status: Int32 {
        switch self {
        case .usage: Self.usageStatus
        case .failed, .hostsFailed, .differences: 1
        }
    }

    var message: String? {
        switch self {
        case .usage(let message), .failed(let message): message
        case .hostsFailed, .differences: nil
        }
    }
}
