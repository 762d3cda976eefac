import AgentAPI
import ArgumentParser
import EventStore
import Foundation
import HTTPServer
import KVM
import MemoryModel

/// Why a `memgate-agent` command ended without success. `Main` is the one place
/// that turns these (and ArgumentParser's own errors) into a message and an exit status.
enum AgentFailure: Error, CustomStringConvertible {
    /// A flag, file or value the user gave cannot be used.
    case usage(String)
    /// /dev/kvm cannot be opened or used.
    case kvmUnavailable(KVMError)
    /// The event store cannot be opened (or migrated, checked, pruned).
    case store(EventStoreError)
    /// The token file was refused.
    case tokens(TokenFileError)
    /// --images-dir was refused.
    case images(ImageDirectoryError)
    /// The HTTP server could not listen.
    case listen(HTTPServerError)
    /// Recording failed while VMs ran: every VM was failed and the agent stopped.
    case recordingFailed(RecordingFailure, what: String)
    /// `run`: the guest's VM ended other than by its own exit.
    case vmEnded(status: Int32, message: String)
    /// `db migrate`, `check` or `prune` could not do its work.
    case maintenance(EventStoreError)
    /// `db check` found a problem it already printed.
    case checkFailed
    /// `vm stop` could not reach or stop a VM process.
    case vmProcess(String)

    var status: Int32 {
        switch self {
        case .usage, .store, .tokens, .images, .listen: AgentExitCode.usage
        case .kvmUnavailable: AgentExitCode.unavailable
        case .recordingFailed: AgentExitCode.recordingFailed
        case .vmEnded(let status, _): status
        case .maintenance, .checkFailed, .vmProcess: 1
        }
    }

    var description: String {
        switch self {
        case .usage(let message): message
        case .kvmUnavailable(let error): "\(error)"
        case .store(let error): "\(error)"
        case .tokens(let error): "\(error)"
        case .images(let error): "\(error)"
        case .listen(let error): "\(error)"
        case .recordingFailed(let failure, let what): "recording failed: \(failure); \(what)"
        case .vmEnded(_, let message): message
        case .maintenance(let error): "\(error)"
        case .checkFailed: "the database check failed"
        case .vmProcess(let message): message
        }
    }
}

/// Exit statuses for outcomes other than the guest's own exit status.
enum AgentExitCode {
    /// A usage error: the same status as memgatectl's.
    static let usage: Int32 = 2
    static let timeout: Int32 = 124
    static let crashed: Int32 = 125
    static let failed: Int32 = 126
    static let faulted: Int32 = 127
    static let unavailable: Int32 = 69  // EX_UNAVAILABLE: no usable KVM
    static let recordingFailed: Int32 = 74  // EX_IOERR: the event store failed; every VM was failed
}

@main
enum Main {
    static func main() {
        do {
            let arguments = Array(CommandLine.arguments.dropFirst())
            // A VM process parses only its own command: building the whole command tree by reflection
            // is most of a process's start, and a VM's create waits for it (bench-lifecycle).
            if arguments.starts(with: ["vm", "process"]) {
                var command = try VMProcessCommand.parseAsRoot(Array(arguments.dropFirst(2)))
                try command.run()
                return
            }
            var command = try MemGateAgent.parseAsRoot()
            try command.run()
        } catch let failure as AgentFailure {
            if case .checkFailed = failure {} else { printError(failure.description) }
            exit(failure.status)
        } catch {
            let code = MemGateAgent.exitCode(for: error)
            // ArgumentParser's usage errors (64 by default) exit as ours do.
            if code == .validationFailure {
                FileHandle.standardError.write(Data((MemGateAgent.fullMessage(for: error) + "\n").utf8))
                exit(AgentExitCode.usage)
            }
            MemGateAgent.exit(withError: error)
        }
    }
}

/// Prints one line to stderr, prefixed with the program name.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("memgate-agent: \(message)\n".utf8))
}
