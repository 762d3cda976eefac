import ArgumentParser
import Foundation
import KVM
import Logging

/// `--log-level`, shared by every subcommand.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level for stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    func makeLogger(label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Exit codes for outcomes other than the guest's own exit status.
enum AgentExitCode {
    static let usage: Int32 = 2
    static let timeout: Int32 = 124
    static let crashed: Int32 = 125
    static let failed: Int32 = 126
    static let faulted: Int32 = 127
    static let unavailable: Int32 = 69  // EX_UNAVAILABLE: no usable KVM
}

/// Prints one line to stderr, prefixed with the program name.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("memgate-agent: \(message)\n".utf8))
}

/// Opens /dev/kvm, or prints why not and exits with `AgentExitCode.unavailable`.
func openKVM() throws -> KVM.System {
    do {
        return try KVM.System()
    } catch {
        printError("\(error)")
        throw ExitCode(AgentExitCode.unavailable)
    }
}
