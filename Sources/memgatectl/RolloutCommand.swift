import ArgumentParser
import Controller
import Foundation
import MemoryModel
import Platform

extension PolicyCommand {
    /// `memgatectl policy rollout FILE`: replay, then push in waves with a bake after each,
    /// rolling back every changed host on the first breach; resumable from its state file.
    struct Rollout: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Replay FILE on every host, then push it in waves (a canary first), watching each wave's events for --bake; roll back on a breach."
        )

        @Argument(help: "The candidate policy document (JSON); not with --resume or --rollback.") var file: String?
        @Flag(help: "Validate and replay on every host, print the plan, change nothing.") var dryRun = false
        @Option(help: "The canary wave: N hosts or N% of the inventory.") var canary = "1"
        @Option(
            help:
                "Choose the canary among hosts with this label=value (repeatable; all must match); else at random by --seed."
        )
        var canarySelect: [String] = []
        @Option(help: "The seed of the canary's random choice (default: drawn, and printed so a rerun can repeat it).")
        var seed: UInt64?
        @Option(help: "Each wave after the canary is this many times the one before (1-1000).") var step: Double = 4
        @Option(
            help:
                "Seconds to watch each wave before the next (0-86400: 60, 90s, 2m; default 60; with --resume, from then on).",
            transform: DurationFlag.seconds) var bake: Double?
        @Option(help: "Denials by the candidate during a bake that stop the rollout when passed.") var maxNewDenials = 0
        @Option(help: "VMs ending faulted during a bake that stop the rollout when passed.") var maxFaulted = 0
        @Option(help: "Hosts unreachable in a wave that stop the rollout when passed.") var maxUnreachable = 0
        @Option(help: "The rollout state file (default: ~/.local/state/memgate/rollouts.db).") var state: String?
        @Flag(help: "Go on with the last rollout a killed controller left running (or --id).") var resume = false
        @Flag(help: "Restore every host the last rollout (or --id) changed to the policy it had.") var rollback = false
        @Option(help: "The rollout to --resume or --rollback (default: the newest in the state file).") var id: Int64?
        @Flag(help: "Start even though the state file's newest rollout is still running (left by a killed controller).")
        var force = false
        @OptionGroup var fleet: FleetOptions

        func validate() throws {
            guard CanarySize(canary) != nil else {
                throw ValidationError("--canary must be a number of hosts (1 or more) or a share such as 5%")
            }
            guard step.isFinite, (1...1000).contains(step) else {
                throw ValidationError("--step must be from 1 to 1000")
            }
            if let bake {
                guard bake.isFinite, (0...86_400).contains(bake) else {
                    throw ValidationError("--bake must be from 0 to 86400 seconds")
                }
            }
            for (flag, value) in [
                ("--max-new-denials", maxNewDenials), ("--max-faulted", maxFaulted),
                ("--max-unreachable", maxUnreachable),
            ] {
                guard (0...1_000_000).contains(value) else {
                    throw ValidationError("\(flag) must be from 0 to 1000000")
                }
            }
            guard !(resume && rollback) else { throw ValidationError("give --resume or --rollback, not both") }
            if resume || rollback {
                guard file == nil else {
                    throw ValidationError("--resume and --rollback take no FILE: the state file has the candidate")
                }
            } else {
                guard file != nil else {
                    throw ValidationError("give the candidate policy FILE (or --resume / --rollback)")
                }
                guard id == nil else { throw ValidationError("--id goes with --resume or --rollback") }
            }
            _ = try canaryLabels()
        }

        func canaryLabels() throws -> [String: String] {
            var labels: [String: String] = [:]
            for pair in canarySelect {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw ValidationError("--canary-select takes label=value, not \(pair)")
                }
                labels[parts[0]] = parts[1]
            }
            return labels
        }

        func run() throws {
            let store: RolloutStateStore
            do {
                store = try RolloutStateStore(path: state ?? RolloutStateStore.defaultPath)
            } catch {
                throw CtlFailure.failed(error.message)
            }
            let display = RolloutDisplay(
                format: fleet.format, terminal: isatty(2) != 0 && !fleet.json,
                names: try fleet.selectedEntries(try fleet.configContext()).map(\.name))
            if !dryRun {
                let last: RolloutRecord?
                do throws(RolloutStateError) {
                    try store.lock()
                    last = try store.rollout()
                } catch {
                    throw CtlFailure.failed(error.message)
                }
                // A rollout a killed controller left running still owns its hosts' policy.
                if !(resume || rollback), !force, let last, last.state == .running {
                    throw CtlFailure.failed(
                        "rollout \(last.id) (candidate \(last.candidateVersion.prefix(12))) is still running in \(store.path): "
                            + "--resume or --rollback it, or pass --force to start another")
                }
            }
            if resume || rollback {
                let rollout = try existing(store)
                let client = try fleet.client(try Self.entries(rollout.hosts), try fleet.configContext())
                let driver = PolicyRollout(
                    fleet: client, streamOptions: try fleet.transportOptions(try fleet.configContext()), store: store,
                    clock: MonotonicClock.wallNanos, report: display.show)
                let result = try outcome { () throws(RolloutError) in
                    try rollback ? driver.rollback(rollout.id) : driver.resume(rollout.id, bakeSeconds: bake)
                }
                return try finish(result, display: display)
            }
            guard let file else { throw CtlFailure.usage("give the candidate policy FILE") }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CtlFailure.usage("cannot read \(file)")
            }
            let document = [UInt8](data)
            let candidate: VersionedPolicy
            do {
                candidate = try VersionedPolicy(document: document)
            } catch {
                throw CtlFailure.failed("\(file): invalid: \(error)")
            }
            let client = try fleet.fleet()
            // What the candidate would have done to what already ran, on every host, before anything is written.
            let replay = ReplayAnswer(PolicyReplayRun.run(document, on: client))
            let seed = self.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
            let labels = try canaryLabels()
            let plan: RolloutPlan
            do throws(RolloutPlanError) {
                plan = try RolloutPlan(
                    hosts: client.hosts, canary: CanarySize(canary) ?? .hosts(1), select: labels, seed: seed, step: step
                )
            } catch {
                throw CtlFailure.usage(error.message)
            }
            display.planned(
                candidate: candidate.version, replay: replay, waves: plan.waves, seed: labels.isEmpty ? seed : nil,
                everyHost: dryRun || fleet.verbose)
            if dryRun { return }
            var limits = BakeLimits()
            limits.maxNewDenials = maxNewDenials
            limits.maxFaulted = maxFaulted
            limits.maxUnreachable = maxUnreachable
            let settings = RolloutSettings(
                bakeSeconds: bake ?? 60, limits: limits, canary: canary, select: labels, seed: seed, step: step)
            let driver = PolicyRollout(
                fleet: client, streamOptions: try fleet.transportOptions(try fleet.configContext()), store: store,
                clock: MonotonicClock.wallNanos, report: display.show)
            let result = try outcome { () throws(RolloutError) in
                try driver.start(document: document, plan: plan, settings: settings)
            }
            try finish(result, display: display)
        }

        /// The rollout `--resume`/`--rollback` means, and its hosts as they were planned.
        func existing(_ store: RolloutStateStore) throws -> (id: Int64, hosts: [RolloutHostRecord]) {
            do {
                guard let rollout = try store.rollout(id) else {
                    throw CtlFailure.usage(
                        id.map { "no rollout \($0) in \(store.path)" } ?? "no rollout in \(store.path)")
                }
                return (rollout.id, try store.hosts(rollout.id))
            } catch let error as RolloutStateError {
                throw CtlFailure.failed(error.message)
            }
        }

        static func entries(_ hosts: [RolloutHostRecord]) throws -> [HostEntry] {
            do {
                return try hosts.map { try HostEntry(url: $0.url, name: $0.name) }
            } catch {
                throw CtlFailure.failed("the state file names a host that is not an agent URL: \(error)")
            }
        }

        func outcome(_ body: () throws(RolloutError) -> RolloutReport) throws -> RolloutReport {
            do throws(RolloutError) {
                return try body()
            } catch {
                throw CtlFailure.failed(error.message)
            }
        }

        func finish(_ result: RolloutReport, display: RolloutDisplay) throws {
            try display.summary(result, verbose: fleet.verbose)
            switch result.state {
            case .completed, .rolledBack: return
            case .breached: throw CtlFailure.failed("rollout \(result.id) stopped and rolled back: \(result.outcome)")
            case .rollbackIncomplete:
                throw CtlFailure.failed(
                    "rollout \(result.id): the rollback did not reach every host: \(result.outcome)")
            case .running: throw CtlFailure.failed("rollout \(result.id) is still running; --resume it")
            }
        }
    }
}
