import APITypes
import ArgumentParser
import Controller
import Foundation
import Platform

struct AuditCommand: ParsableCommand {
    /// The fleet database `--into` names: a postgresql:// URI, else a SQLite file.
    static func openSink(_ into: String) throws -> AuditSink {
        do {
            return into.hasPrefix("postgresql://") || into.hasPrefix("postgres://")
                ? try PostgresAuditSink(uri: into) : try SQLiteAuditSink(path: into)
        } catch {
            throw CtlFailure.failed("\(error)")
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Collect the fleet's events for audit.",
        subcommands: [Pull.self, Verify.self])

    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull every host's new events into one database (a SQLite file or postgresql://…); resumable.")
        @Option(help: "The fleet database: a SQLite path, or a postgresql:// connection URI.") var into: String
        @Option(help: "Events per request (1-1000).") var pageSize: Int = 1000
        @Option(
            help:
                "Most events one host may hand out in this run (1-100000000); a host past it fails, and the next run continues."
        )
        var maxRows: Int = 1_000_000
        @Option(
            help:
                "Seconds the whole pull may take (0.1-86400: 600, 600s, 10m); hosts not done by then fail, and the next run continues.",
            transform: DurationFlag.seconds)
        var maxDuration: Double?
        @OptionGroup var fleet: FleetOptions

        struct Row: Codable {
            var host: String
            var events: Int
            var cursor: Int64
            var error: String?
        }

        func validate() throws {
            guard PageLimit.range.contains(pageSize) else {
                throw ValidationError("--page-size must be \(PageLimit.words)")
            }
            guard (1...100_000_000).contains(maxRows) else {
                throw ValidationError("--max-rows must be from 1 to 100000000")
            }
            if let maxDuration, !(0.1...86_400).contains(maxDuration) {
                throw ValidationError("--max-duration must be from 0.1 to 86400 seconds")
            }
        }

        func run() throws {
            let client = try fleet.fleet()
            let sink = try AuditCommand.openSink(into)
            let reports = AuditPull(pageSize: pageSize, maxRows: maxRows, deadline: maxDuration).run(client, into: sink)
            {
                MonotonicClock.wallNanos()
            }
            let rows = reports.map { Row(host: $0.host, events: $0.events, cursor: $0.cursor, error: $0.failure) }
            if fleet.json {
                try Out.json(["hosts": rows], as: fleet.format)
            } else {
                var table = Table(["HOST", "NEW EVENTS", "CURSOR", "STATUS"])
                for row in rows { table.add([row.host, "\(row.events)", "\(row.cursor)", row.error ?? "ok"]) }
                Out.line(table.render())
            }
            if reports.contains(where: { $0.failure != nil }) { throw CtlFailure.hostsFailed }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Compare every host's live audit chain heads with the heads the fleet database keeps, without pulling.",
            discussion: """
                Each host must still show, at the head stored by the last `audit pull`, the chain value it showed then, and its \
                chain must not end before it. A host whose history was rewritten, or whose rows were removed, is recorded in \
                fleet_chain_breaks and named; the command then exits 1. A prune on the host is accepted (the cut is recorded).
                """)
        @Option(help: "The fleet database: a SQLite path, or a postgresql:// connection URI.") var into: String
        @OptionGroup var fleet: FleetOptions

        struct Row: Codable {
            var host: String
            var chain: String
            var fleetHead: Int64?
            var hostHead: Int64?
            var error: String?
        }

        func run() throws {
            let client = try fleet.fleet()
            let sink = try AuditCommand.openSink(into)
            let reports = AuditVerify(deadline: fleet.deadline).run(client, against: sink) {
                MonotonicClock.wallNanos()
            }
            let rows = reports.map {
                Row(
                    host: $0.host, chain: $0.chain, fleetHead: $0.stored?.id, hostHead: $0.live?.lastId,
                    error: $0.failure)
            }
            if fleet.json {
                try Out.json(["hosts": rows], as: fleet.format)
            } else {
                var table = Table(["HOST", "CHAIN", "FLEET HEAD", "HOST HEAD", "STATUS"])
                for row in rows {
                    table.add([
                        row.host, row.chain, row.fleetHead.map(String.init) ?? "-",
                        row.hostHead.map(String.init) ?? "-", row.error ?? "ok",
                    ])
                }
                Out.line(table.render())
            }
            if reports.contains(where: { $0.failure != nil }) { throw CtlFailure.hostsFailed }
        }
    }
}
