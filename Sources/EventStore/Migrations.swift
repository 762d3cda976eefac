import Foundation
import MemoryModel

/// Why the event store could not be opened or used.
public enum EventStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case sqlite(SQLiteError)
    /// The database was written by a newer MemGate.
    case schemaTooNew(database: Int, binary: Int)
    case migrations(String)
    /// Another process owns the database for writing.
    case busy(String)
    /// The event ring next to the database (`<db>-ring`) cannot be opened or mapped.
    case ring(EventRingError)
    /// A file beside the database is a link or otherwise not the agent's own.
    case unsafeFile(StoreFileError)
    /// Recording failed for good (a commit failed, or the file was removed); nothing more is written.
    case recording(RecordingFailure)

    public var description: String {
        switch self {
        case .sqlite(let error): "event store: \(error)"
        case .schemaTooNew(let database, let binary):
            "event store: the database has schema version \(database) but this memgate-agent knows only up to \(binary); use a newer memgate-agent"
        case .migrations(let message): "event store migrations: \(message)"
        case .busy(let reason): "event store: \(reason)"
        case .ring(let error): "event store ring: \(error); check the directory's free space and permissions"
        case .unsafeFile(let error): "event store: \(error)"
        case .recording(let failure): "event store: recording has failed: \(failure)"
        }
    }
}

extension EventStoreError {
    /// Runs `body`, turning whatever it throws into an `EventStoreError`.
    static func wrapping<T>(_ body: () throws -> T) throws(EventStoreError) -> T {
        do {
            return try body()
        } catch let error as EventStoreError {
            throw error
        } catch let error as SQLiteError {
            throw .sqlite(error)
        } catch let error as StoreFileError {
            throw .unsafeFile(error)
        } catch {
            throw .migrations("\(error)")
        }
    }
}

/// One forward-only schema step, from `Migrations/NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
}

public enum Migrator {
    /// Opens `path` for writing the way every writer must: incremental auto-vacuum
    /// (settable only before the file has any content, so before WAL), then WAL.
    public static func openForWriting(path: String) throws(EventStoreError) -> SQLiteConnection {
        // Audit data is the owner's: create the file 0600 (SQLite gives -wal and -shm the same mode),
        // never through a link. A file that is not the agent's own is refused by name.
        do throws(StoreFileError) {
            for suffix in StoreFiles.sqliteSuffixes.dropFirst() { try StoreFiles.check(path + suffix) }
            // Safety: closes the descriptor StoreFiles.open just returned.
            close(try StoreFiles.open(path))
        } catch {
            throw .unsafeFile(error)
        }
        do throws(SQLiteError) {
            return try openWAL(path: path)
        } catch {
            throw .sqlite(error)
        }
    }

    private static func openWAL(path: String) throws(SQLiteError) -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path, noFollow: true)
        try connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        // Switching a new file to WAL while another process does the same can report
        // SQLITE_BUSY without consulting the busy handler: retry for the busy timeout.
        var attempts = 0
        while true {
            do {
                try connection.execute("PRAGMA journal_mode = WAL")
                return connection
            } catch where error.code & 0xFF == 5 && attempts < 1000 {
                attempts += 1
                usleep(5000)
            }
        }
    }

    /// The migrations built into the binary (a copy of the repository's Migrations/ folder).
    public static func bundled() throws(EventStoreError) -> [Migration] {
        guard let url = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw .migrations("the Migrations resource is missing from the build")
        }
        return try load(directory: url)
    }

    /// Reads `NNNN_name.sql` files; versions must run 1, 2, 3… without gaps.
    public static func load(directory: URL) throws(EventStoreError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted()
        } catch {
            throw .migrations("cannot list \(directory.path): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for name in names {
            guard let version = Int(name.prefix { $0.isNumber }), name.first?.isNumber == true else {
                throw .migrations("\(name) does not start with a version number (NNNN_name.sql)")
            }
            guard version == migrations.count + 1 else {
                throw .migrations("\(name) has version \(version), expected \(migrations.count + 1)")
            }
            guard let sql = try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8) else {
                throw .migrations("cannot read \(name)")
            }
            migrations.append(Migration(version: version, name: name, sql: sql))
        }
        guard !migrations.isEmpty else { throw .migrations("no migrations in \(directory.path)") }
        return migrations
    }

    /// Applies the missing migrations in one transaction; refuses a newer database.
    /// Returns the schema versions before and after.
    @discardableResult
    public static func migrate(_ connection: SQLiteConnection, _ migrations: [Migration]) throws(EventStoreError) -> (from: Int, to: Int) {
        try EventStoreError.wrapping {
            // Read the version under the write lock, so two processes cannot both migrate.
            try connection.execute("BEGIN IMMEDIATE")
            do {
                let current = Int(try connection.scalar("PRAGMA user_version") ?? 0)
                let latest = migrations.last?.version ?? 0
                guard current <= latest else { throw EventStoreError.schemaTooNew(database: current, binary: latest) }
                guard current < latest else {
                    try connection.execute("COMMIT")
                    return (current, current)
                }
                for migration in migrations where migration.version > current {
                    try connection.execute(migration.sql)
                    try connection.execute("PRAGMA user_version = \(migration.version)")
                }
                try connection.execute("COMMIT")
                return (current, latest)
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }
}
