import ArgumentParser
import Foundation

struct MemgateCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memgatectl",
        abstract: "Query and steer many memgate-agents at once.",
        discussion: """
            Hosts come from --hosts FILE (one `URL [NAME] [key=value ...]` a line), --host URL (repeatable) \
            or MEMGATE_HOSTS; the token from --token-file or MEMGATE_TOKEN. Exit status: 0 when every host \
            answered, 1 when some did not (each row says why), 2 for a usage error.
            """,
        subcommands: [HostsCommand.self, VMsCommand.self, FaultsCommand.self, ConversionsCommand.self, EventsCommand.self,
                      VMCommand.self, MemoryCommand.self, PolicyCommand.self, AuditCommand.self])
}

/// Usage errors exit 2 (ArgumentParser's own default is 64).
@main
enum Main {
    static func main() {
        do {
            var command = try MemgateCtl.parseAsRoot()
            try command.run()
        } catch {
            let code = MemgateCtl.exitCode(for: error)
            if code == .validationFailure || error is UsageError {
                FileHandle.standardError.write(Data((MemgateCtl.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            MemgateCtl.exit(withError: error)
        }
    }
}

/// A usage problem found after parsing (a bad hosts file, a missing token): exit 2.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
