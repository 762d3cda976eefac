import Foundation
import Logging
import Synchronization
import VMProcess

/// One VM process kept started ahead of need (`VMSpawner.spawnSpare`), so a create does not
/// wait for a process to exec and start its runtime (`make bench-lifecycle`). Taking it starts
/// the next in the background. A spare whose agent dies reads the end of its spec pipe and exits.
final class SparePool: Sendable {
    private let spawner: VMSpawner
    private let logLevel: String
    private let logger: Logger
    private struct State {
        var spare: SpareVMProcess?
        var filling = false
        var closed = false
    }
    private let state = Mutex(State())

    init(spawner: VMSpawner, logLevel: String, logger: Logger) {
        self.spawner = spawner
        self.logLevel = logLevel
        self.logger = logger
    }

    /// Starts a spare on a thread of its own unless one is there or starting.
    func fill() {
        let start = state.withLock { state -> Bool in
            guard state.spare == nil, !state.filling, !state.closed else { return false }
            state.filling = true
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in
            var started: SpareVMProcess?
            do throws(VMSpawnError) {
                started = try spawner.spawnSpare(logLevel: logLevel)
            } catch {
                logger.warning(
                    "could not start a spare VM process; VMs start their own", metadata: ["error": "\(error)"])
            }
            let unused = state.withLock { state -> SpareVMProcess? in
                state.filling = false
                guard !state.closed else { return started }
                state.spare = started
                return nil
            }
            unused?.discard()
        }
        thread.name = "memgate-spare"
        thread.start()
    }

    /// The spare, if one is ready; the next is started.
    func take() -> SpareVMProcess? {
        let spare = state.withLock { state -> SpareVMProcess? in
            defer { state.spare = nil }
            return state.spare
        }
        fill()
        return spare
    }

    /// Ends the spare (the agent is exiting).
    func close() {
        let spare = state.withLock { state -> SpareVMProcess? in
            state.closed = true
            defer { state.spare = nil }
            return state.spare
        }
        spare?.discard()
    }
}
