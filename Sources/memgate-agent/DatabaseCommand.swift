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
        subcommands: [Migrate.self, Check.self, Prune.self])

    struct Location: ParsableArguments {
        @Option(help: "The event store.")
        var db: String = "./memgate.db"
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the database or bring its schema up to date; apply events a killed agent left in its ring.")
        @OptionGroup var location: Location

        func run() throws {
            do {
                let (from, to, fromRing) = try Maintenance.migrate(path: location.db)
                print(from == to ? "\(location.db): schema version \(to), up to date" : "\(location.db): schema version \(from) -> \(to)")
                if fromRing > 0 { print("\(location.db): applied \(fromRing) events a stopped agent left in \(location.db)-ring") }
            } catch {
                throw AgentFailure.maintenance(error)
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check integrity and schema version; print row counts.")
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
            print("vms: \(report.vms), memory faults: \(report.faults), conversions: \(report.conversions) (\(report.pendingConversions) pending, \(report.incompleteConversions) incomplete)")
            guard report.integrity == "ok", report.schemaVersion == report.binaryVersion else { throw AgentFailure.checkFailed }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete events older than a duration, keeping every row of VMs still known.",
            discussion: "DURATION is a number with s, m, h or d, e.g. 30d. VMs that have not ended keep all their rows.")
        @OptionGroup var location: Location

        @Option(help: "Age of the oldest event to keep, e.g. 7d or 12h.")
        var olderThan: String

        func validate() throws {
            guard TimeArgument.duration(olderThan) != nil else {
                throw ValidationError("--older-than must be a number followed by s, m, h or d (e.g. 7d), not \(olderThan)")
            }
        }

        func run() throws {
            guard let age = TimeArgument.duration(olderThan) else { throw AgentFailure.usage("--older-than \(olderThan) is not a duration") }
            let now = MonotonicClock.wallNanos()
            do {
                let report = try Maintenance.prune(path: location.db, olderThan: now > age ? now - age : 0)
                print("pruned \(report.faults) memory faults, \(report.conversions) conversions, \(report.vms) VMs, \(report.apiRequests) API requests, \(report.refusalCounts) refusal counts")
            } catch {
                throw AgentFailure.maintenance(error)
            }
        }
    }
}
