import Foundation

/// Why a database could not be opened for writing or brought to its schema.
public enum MigrationError: Error, Sendable, Equatable, CustomStringConvertible {
    case sqlite(SQLiteError)
    /// The database was written by a newer program than this one.
    case schemaTooNew(database: Int, binary: Int)
    /// The migration files cannot be used (missing, misnamed, unreadable).
    case unusable(String)
    /// A file beside the database is a link or otherwise not the writer's own.
    case unsafeFile(StoreFileError)

    public var description: String {
        switch self {
        case .sqlite(let error): "\(error)"
        case .schemaTooNew(let database, let binary):
            "the database has schema version \(database) but this program knows only up to \(binary)"
        case .unusable(let message): "migrations: \(message)"
        case .unsafeFile(let error): "\(error)"
        }
    }
}

/// One forward-only schema step, from `Migrations/NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

public enum Migrator {
    /// Opens `path` for writing the way every writer must: incremental auto-vacuum
    /// (settable only before the file has any content, so before WAL), then WAL.
    public static func openForWriting(path: String) throws(MigrationError) -> SQLiteConnection {
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
            } catch  where error.code & 0xFF == 5 && attempts < 1000 {
                attempts += 1
                usleep(5000)
            }
        }
    }

    /// Reads `NNNN_name.sql` files; versions must run 1, 2, 3… without gaps.
    public static func load(directory: URL) throws(MigrationError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
                .sorted()
        } catch {
            throw .unusable("cannot list \(directory.path): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for name in names {
            guard let version = Int(name.prefix { $0.isNumber }), name.first?.isNumber == true else {
                throw .unusable("\(name) does not start with a version number (NNNN_name.sql)")
            }
            guard version == migrations.count + 1 else {
                throw .unusable("\(name) has version \(version), expected \(migrations.count + 1)")
            }
            guard let sql = try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8) else {
                throw .unusable("cannot read \(name)")
            }
            migrations.append(Migration(version: version, name: name, sql: sql))
        }
        guard !migrations.isEmpty else { throw .unusable("no migrations in \(directory.path)") }
        return migrations
    }

    /// Applies the missing migrations in one transaction; refuses a newer database.
    /// Returns the schema versions before and after.
    @discardableResult
    public static func migrate(_ connection: SQLiteConnection, _ migrations: [Migration]) throws(MigrationError) -> (
        from: Int, to: Int
    ) {
        let latest = migrations.last?.version ?? 0
        let current: Int
        do throws(SQLiteError) {
            // Read the version under the write lock, so two processes cannot both migrate.
            current = try connection.transaction { () throws(SQLiteError) -> Int in
                let current = Int(try connection.scalar("PRAGMA user_version") ?? 0)
                guard current < latest else { return current }
                for migration in migrations where migration.version > current {
                    try connection.execute(migration.sql)
                    try connection.execute("PRAGMA user_version = \(migration.version)")
                }
                return current
            }
        } catch {
            throw .sqlite(error)
        }
        // A newer schema is left as it is (the transaction above changed nothing) and refused.
        guard current <= latest else { throw .schemaTooNew(database: current, binary: latest) }
        return (current, max(current, latest))
    }
}
