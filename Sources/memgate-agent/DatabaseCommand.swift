import APITypes
import ArgumentParser
import EventStore
import Foundation
import KVM
import Platform
import VMM

struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Maintain the SQLite event store.",
        subcommands: [Migrate.self, Check.self, Verify.self, Prune.self])

    struct Location: ParsableArguments {
        @Option(help: "The event store.")
        var db: String = "./memgate.db"
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Create the database or bring its schema up to date; apply events a killed agent left in its ring.")
        @OptionGroup var location: Location

        func run() throws {
            do {
                let (from, to, fromRing) = try Maintenance.migrate(path: location.db)
                print(
                    from == to
                        ? "\(location.db): schema version \(to), up to date"
                        : "\(location.db): schema version \(from) -> \(to)")
                if fromRing > 0 {
                    print("\(location.db): applied \(fromRing) events a stopped agent left in \(location.db)-ring")
                }
            } catch {
                throw AgentFailure.maintenance(error)
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check integrity and schema version; print row counts.")
        @OptionGroup var location: Location

        func run() throws {
            let report: Maintenance.CheckReport
            do {
                report = try Maintenance.check(path: location.db)
            } catch {
                throw AgentFailure.maintenance(error)
            }
            print("integrity: \(report.integrity)")
            print("schema version: \(report.schemaVersion) (this binary: \(report.binaryVersion))")
            print(
                "vms: \(report.vms), memory faults: \(report.faults), conversions: \(report.conversions) (\(report.pendingConversions) pending, \(report.incompleteConversions) incomplete)"
            )
            guard report.integrity == "ok", report.schemaVersion == report.binaryVersion else {
                throw AgentFailure.checkFailed
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the audit chains and name the first row that does not match.",
            discussion: """
                Every event (and every admitted API write) carries the SHA-256 of the previous one's chain value and its own \
                canonical bytes (docs/AUDIT-CHAIN.md). This recomputes both chains from their genesis and exits 1 naming the \
                first row whose stored value differs: an edited, deleted or inserted row. Read-only; safe while an agent records.
                """)
        @OptionGroup var location: Location

        func run() throws {
            let reports: [ChainVerifier.Report]
            do {
                reports = try Maintenance.verify(path: location.db)
            } catch {
                throw AgentFailure.maintenance(error)
            }
            var failed = false
            for report in reports {
                let start =
                    report.genesisID == 0
                    ? "from the start"
                    : "from its genesis after \(report.genesisID) (\(report.genesisChain.prefix(16))…)"
                if let problem = report.problem {
                    failed = true
                    printError(
                        "\(report.chain.rawValue) chain: BROKEN at \(problem.table) \(problem.id): \(problem.reason)")
                    printError("  stored:   \(problem.stored ?? "none")")
                    printError("  computed: \(problem.computed ?? "none")")
                    printError("  \(report.rows) rows verified \(start), through \(report.lastID)")
                } else {
                    print(
                        "\(report.chain.rawValue) chain: ok, \(report.rows) rows \(start), head \(report.lastID) \(report.lastChain)"
                    )
                }
            }
            if failed { throw AgentFailure.checkFailed }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete events older than a duration, keeping every row of VMs still known.",
            discussion: """
                DURATION is a number with s, m, h or d, e.g. 30d. Events go from the oldest up to the first that must stay \
                (a newer one, or one of a VM that has not ended), so the audit chain still verifies: the value at the cut \
                becomes its genesis, with the count and time span removed. Policy applications stay.
                """)
        @OptionGroup var location: Location

        @Option(help: "Age of the oldest event to keep, e.g. 7d or 12h.")
        var olderThan: String

        func validate() throws {
            guard TimeArgument.duration(olderThan) != nil else {
                throw ValidationError(
                    "--older-than must be a number followed by s, m, h or d (e.g. 7d), not \(olderThan)")
            }
        }

        func run() throws {
            guard let age = TimeArgument.duration(olderThan) else {
                throw AgentFailure.usage("--older-than \(olderThan) is not a duration")
            }
            let now = MonotonicClock.wallNanos()
            do {
                let report = try Maintenance.prune(path: location.db, olderThan: now > age ? now - age : 0)
                print(
                    "pruned \(report.faults) memory faults, \(report.conversions) conversions, \(report.lifecycle) VM lifecycle events, \(report.vms) VMs, \(report.apiRequests) API requests, \(report.refusalCounts) refusal counts"
                )
            } catch {
                throw AgentFailure.maintenance(error)
            }
        }
    }
}
