import Foundation
import Glibc
import SQLite

public struct RolloutStateError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a rollout was told to do, kept so `--resume` does the same.
public struct RolloutSettings: Codable, Sendable, Equatable {
    public var bakeSeconds: Double
    public var limits: BakeLimits
    public var canary: String
    public var select: [String: String]
    public var seed: UInt64
    public var step: Double

    public init(
        bakeSeconds: Double, limits: BakeLimits, canary: String, select: [String: String], seed: UInt64, step: Double
    ) {
        self.bakeSeconds = bakeSeconds
        self.limits = limits
        self.canary = canary
        self.select = select
        self.seed = seed
        self.step = step
    }
}

/// A rollout as the state file keeps it.
public struct RolloutRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        case running, completed, breached
        case rolledBack = "rolled_back"
        case rollbackIncomplete = "rollback_incomplete"
    }

    public enum Phase: String, Sendable {
        case push, bake
    }

    public var id: Int64
    public var startedNanos: UInt64
    public var candidateVersion: String
    public var candidate: [UInt8]
    public var plan: RolloutPlan
    public var settings: RolloutSettings
    public var state: State
    public var wave: Int
    public var phase: Phase
    public var bakeStartedNanos: UInt64?
    public var outcome: String?
}

/// One host of a rollout.
public struct RolloutHostRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        case pending, pushed, unchanged, failed
        case rolledBack = "rolled_back"
        /// Someone changed its policy after the rollout did: left alone by the rollback.
        case changedSince = "changed_since"
        case rollbackFailed = "rollback_failed"
    }

    public var host: Int
    public var name: String
    public var url: String
    public var wave: Int
    public var state: State
    public var oldVersion: String?
    public var oldDocument: [UInt8]?
    public var newVersion: String?
    /// The host's newest event id when it was pushed: its bake reads from here.
    public var afterEvent: Int64?
    public var detail: String?
}

/// The rollout state file (`--state FILE`): a SQLite file with the schema in
/// `RolloutMigrations/`, written after every step so a controller killed at any point
/// can `--resume` or `--rollback` what it started.
public final class RolloutStateStore {
    private let connection: SQLiteConnection
    public let path: String
    /// The open lock file while this process drives a rollout from this state file (see `lock`).
    private var lockDescriptor: Int32 = -1

    /// `~/.local/state/memgate/rollouts.db` (or under `$XDG_STATE_HOME`).
    public static var defaultPath: String {
        let environment = ProcessInfo.processInfo.environment
        let base =
            environment["XDG_STATE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/state"
        return base + "/memgate/rollouts.db"
    }

    public init(path: String) throws(RolloutStateError) {
        self.path = path
        do {
            // The folder is the operator's own (0700), as the file is (0600, by the migrator).
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try FileManager.default.createDirectory(
                    atPath: folder, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
            }
            connection = try Migrator.openForWriting(path: path)
            guard let url = Bundle.module.url(forResource: "RolloutMigrations", withExtension: nil) else {
                throw RolloutStateError("the RolloutMigrations resource is missing from the build")
            }
            try Migrator.migrate(connection, try Migrator.load(directory: url))
        } catch let error as RolloutStateError {
            throw error
        } catch {
            throw RolloutStateError("rollout state \(path): \(error)")
        }
    }

    deinit {
        if lockDescriptor >= 0 { close(lockDescriptor) }
    }

    /// Takes `PATH.lock` for as long as this process lives (flock, released by the kernel when it ends,
    /// crash included): one controller at a time drives the rollouts of a state file. Another one
    /// holding it is named by the pid it wrote there.
    public func lock() throws(RolloutStateError) {
        guard lockDescriptor < 0 else { return }
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RolloutStateError("rollout state \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder =
                (try? String(contentsOfFile: lockPath, encoding: .utf8))?.trimmingCharacters(
                    in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw RolloutStateError(
                "another memgatectl\(holder.isEmpty ? "" : " (pid \(holder))") is driving a rollout from \(path); "
                    + "wait for it to end, or stop it and --resume")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        // Safety: the array outlives the call; a short write only shortens the message above.
        // Safety: pwrite reads exactly the string's bytes, within the closure that lends them.
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        lockDescriptor = fd
    }

    private func write(_ body: () throws(SQLiteError) -> Void) throws(RolloutStateError) {
        do throws(SQLiteError) {
            try connection.transaction { () throws(SQLiteError) in try body() }
        } catch {
            throw RolloutStateError("rollout state \(path): \(error)")
        }
    }

    private func read<T>(_ body: () throws(SQLiteError) -> T) throws(RolloutStateError) -> T {
        do throws(SQLiteError) {
            return try body()
        } catch {
            throw RolloutStateError("rollout state \(path): \(error)")
        }
    }

    /// Records a new rollout with every host pending; returns its id.
    public func begin(
        candidate: [UInt8], version: String, plan: RolloutPlan, settings: RolloutSettings, hosts: [HostEntry],
        atNanos: UInt64
    ) throws(RolloutStateError) -> Int64 {
        let planJSON = String(decoding: (try? JSONEncoder().encode(plan.waves)) ?? Data("[]".utf8), as: UTF8.self)
        let settingsJSON = String(decoding: (try? JSONEncoder().encode(settings)) ?? Data("{}".utf8), as: UTF8.self)
        var id: Int64 = 0
        try write { () throws(SQLiteError) in
            try connection.query(
                "INSERT INTO rollouts (started_ns, candidate_version, candidate, plan, settings) VALUES (?, ?, ?, ?, ?)",
                [
                    .unsigned(atNanos), .text(version), .text(String(decoding: candidate, as: UTF8.self)),
                    .text(planJSON), .text(settingsJSON),
                ])
            id = try connection.scalar("SELECT last_insert_rowid()") ?? 0
            let insert = try connection.statement(
                "INSERT INTO rollout_hosts (rollout_id, host, name, url, wave) VALUES (?, ?, ?, ?, ?)")
            for (wave, members) in plan.waves.enumerated() {
                for host in members where hosts.indices.contains(host) {
                    try insert.run([
                        .integer(id), .integer(Int64(host)), .text(hosts[host].name), .text(hosts[host].url),
                        .integer(Int64(wave)),
                    ])
                }
            }
        }
        return id
    }

    /// A rollout by id, or the newest one (nil when there is none).
    public func rollout(_ id: Int64? = nil) throws(RolloutStateError) -> RolloutRecord? {
        let rows = try read { () throws(SQLiteError) in
            try connection.query(
                """
                SELECT id, started_ns, candidate_version, candidate, plan, settings, state, wave, phase, bake_started_ns, outcome
                FROM rollouts \(id == nil ? "" : "WHERE id = ?") ORDER BY id DESC LIMIT 1
                """, id.map { [.integer($0)] } ?? [])
        }
        guard let row = rows.first, row.count == 11 else { return nil }
        guard let waves = try? JSONDecoder().decode([[Int]].self, from: Data(row[4].textValue.utf8)),
            let settings = try? JSONDecoder().decode(RolloutSettings.self, from: Data(row[5].textValue.utf8)),
            let state = RolloutRecord.State(rawValue: row[6].textValue),
            let phase = RolloutRecord.Phase(rawValue: row[8].textValue)
        else {
            throw RolloutStateError(
                "rollout state \(path): rollout \(row[0].integerValue) cannot be read back (written by another version?)"
            )
        }
        return RolloutRecord(
            id: row[0].integerValue, startedNanos: UInt64(bitPattern: row[1].integerValue),
            candidateVersion: row[2].textValue,
            candidate: row[3].blobValue, plan: RolloutPlan(waves: waves), settings: settings, state: state,
            wave: Int(row[7].integerValue), phase: phase,
            bakeStartedNanos: row[9] == .null ? nil : UInt64(bitPattern: row[9].integerValue),
            outcome: row[10] == .null ? nil : row[10].textValue)
    }

    /// Every host of a rollout, in inventory order.
    public func hosts(_ id: Int64) throws(RolloutStateError) -> [RolloutHostRecord] {
        let rows = try read { () throws(SQLiteError) in
            try connection.query(
                """
                SELECT host, name, url, wave, state, old_version, old_document, new_version, after_event, detail
                FROM rollout_hosts WHERE rollout_id = ? ORDER BY host
                """, [.integer(id)])
        }
        return rows.compactMap { row in
            guard row.count == 10, let state = RolloutHostRecord.State(rawValue: row[4].textValue) else { return nil }
            return RolloutHostRecord(
                host: Int(row[0].integerValue), name: row[1].textValue, url: row[2].textValue,
                wave: Int(row[3].integerValue),
                state: state, oldVersion: row[5].optionalText, oldDocument: row[6] == .null ? nil : row[6].blobValue,
                newVersion: row[7].optionalText, afterEvent: row[8] == .null ? nil : row[8].integerValue,
                detail: row[9].optionalText)
        }
    }

    public func update(_ id: Int64, host record: RolloutHostRecord) throws(RolloutStateError) {
        try update(id, hosts: [record])
    }

    /// Many hosts in one transaction (a wave of thousands is one commit, not thousands).
    public func update(_ id: Int64, hosts records: [RolloutHostRecord]) throws(RolloutStateError) {
        try write { () throws(SQLiteError) in
            for record in records {
                try connection.query(
                    """
                    UPDATE rollout_hosts SET state = ?, old_version = ?, old_document = ?, new_version = ?, after_event = ?, detail = ?
                    WHERE rollout_id = ? AND host = ?
                    """,
                    [
                        .text(record.state.rawValue), record.oldVersion.map(SQLValue.text) ?? .null,
                        record.oldDocument.map { .text(String(decoding: $0, as: UTF8.self)) } ?? .null,
                        record.newVersion.map(SQLValue.text) ?? .null,
                        record.afterEvent.map(SQLValue.integer) ?? .null, record.detail.map(SQLValue.text) ?? .null,
                        .integer(id), .integer(Int64(record.host)),
                    ])
            }
        }
    }

    /// Where the rollout is: the wave, pushing or baking (and since when).
    public func step(_ id: Int64, wave: Int, phase: RolloutRecord.Phase, bakeStartedNanos: UInt64? = nil)
        throws(RolloutStateError)
    {
        try write { () throws(SQLiteError) in
            try connection.query(
                "UPDATE rollouts SET wave = ?, phase = ?, bake_started_ns = ? WHERE id = ?",
                [
                    .integer(Int64(wave)), .text(phase.rawValue), bakeStartedNanos.map(SQLValue.unsigned) ?? .null,
                    .integer(id),
                ])
        }
    }

    public func finish(_ id: Int64, state: RolloutRecord.State, outcome: String) throws(RolloutStateError) {
        try write { () throws(SQLiteError) in
            try connection.query(
                "UPDATE rollouts SET state = ?, outcome = ? WHERE id = ?",
                [.text(state.rawValue), .text(outcome), .integer(id)])
        }
    }

    public func addEvidence(_ id: Int64, wave: Int, breach: BakeBreach) throws(RolloutStateError) {
        try write { () throws(SQLiteError) in
            for evidence in breach.evidence {
                try connection.query(
                    "INSERT INTO rollout_evidence (rollout_id, wave, host, event_id, kind, what) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        .integer(id), .integer(Int64(wave)), .integer(Int64(evidence.host)),
                        evidence.eventID.map(SQLValue.integer) ?? .null, .text(breach.kind), .text(evidence.what),
                    ])
            }
        }
    }
}

private extension SQLValue {
    var integerValue: Int64 { if case .integer(let value) = self { value } else { 0 } }
    var textValue: String { if case .text(let value) = self { value } else { "" } }
    var optionalText: String? { if case .text(let value) = self { value } else { nil } }
    /// Documents are kept as text: the agents take only UTF-8 JSON, so the bytes come back exactly.
    var blobValue: [UInt8] { Array(textValue.utf8) }
}
