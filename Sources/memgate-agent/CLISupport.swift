import ArgumentParser
import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform

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

/// `--db`, `--no-record`, `--durability`, `--record-budget`, `--policy`: where `run` and
/// `serve` record, and the policy they start with.
struct RecordingOptions: ParsableArguments {
    @Option(help: "SQLite event store (created on first use, mode 0600).")
    var db: String = "./memgate.db"

    @Flag(help: "Do not record events (for measuring without the store).")
    var noRecord = false

    @Option(help: "normal: events survive the agent dying; full: they also survive power loss.")
    var durability: Durability = .normal

    @Option(
        help:
            "Rows per second each VM may add for each of invalid requests, denied requests and memory faults; beyond it they are counted per second in event_aggregates (1-1000000)."
    )
    var recordBudget: UInt64 = 1000

    @Option(
        help:
            "Replace the stored conversion policy with this file (JSON), recorded with its path. Default: the policy in force when the agent last ran (the built-in allow-all on a new store)."
    )
    var policy: String?

    func validate() throws {
        guard (1...1_000_000).contains(recordBudget) else {
            throw ValidationError("--record-budget must be from 1 to 1000000 rows per second, not \(recordBudget)")
        }
    }

    /// The store, unless --no-record.
    /// - Parameter adoptsVMs: the caller adopts VMs whose processes outlived their agent (it closes the rest).
    func open(logger: Logger, adoptsVMs: Bool = false) throws(AgentFailure) -> EventStore? {
        guard !noRecord else { return nil }
        do throws(EventStoreError) {
            return try EventStore(path: db, durability: durability, closeLostVMs: !adoptsVMs, logger: logger)
        } catch {
            throw .store(error)
        }
    }

    /// The store (unless --no-record) and the policy to start with: --policy, else the store's
    /// policy in force. A store whose policy cannot be resolved is closed again.
    func openWithPolicy(command: String, logger: Logger, adoptsVMs: Bool = false) throws -> (
        store: EventStore?, policy: PolicyInForce
    ) {
        let store = try open(logger: logger, adoptsVMs: adoptsVMs)
        do {
            return (store, try PolicyInForce.resolve(file: policy, store: store, command: command))
        } catch {
            store?.close()
            throw error
        }
    }
}

/// Opens /dev/kvm, hiding what `MEMGATE_KVM_HIDE` names (an unknown name is a usage error).
func openKVM() throws(AgentFailure) -> KVM.System {
    let hidden: HiddenCapabilities
    do throws(HiddenCapabilitiesError) {
        hidden = try HiddenCapabilities.fromEnvironment()
    } catch {
        throw .usage(error.description)
    }
    do throws(KVMError) {
        return try KVM.System(hiding: hidden)
    } catch {
        throw .kvmUnavailable(error)
    }
}
