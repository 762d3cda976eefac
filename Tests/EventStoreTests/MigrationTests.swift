import APITypes
import Foundation
import Logging
import SQLite
import Synchronization
import TestSupport
import Testing

@testable import EventStore

func temporaryDatabase() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("memgate-store-\(UUID().uuidString).db").path
}

func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-ring", ".lock"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}

let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

@Suite struct MigrationTests {
    @Test func bundledMigrationsAreTheRepositoryFiles() throws {
        let onDisk = try Migrator.load(directory: TestSupport.packageRoot.appendingPathComponent("Migrations"))
        #expect(try Migrator.bundled() == onDisk)
        #expect(onDisk.first?.name == "0001_initial.sql")
    }

    @Test func migratesFromEmptyAndReopenIsANoOp() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let latest = try #require(try Migrator.bundled().last?.version)
        #expect(latest >= 2)
        #expect(try Maintenance.migrate(path: path) == (0, latest, 0))
        #expect(try Maintenance.migrate(path: path) == (latest, latest, 0))
        let connection = try SQLiteConnection(path: path)
        let tables = try connection.query(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
        )
        .compactMap { if case .text(let t)? = $0.first { t } else { nil } }
        for name in [
            "vms", "memory_faults", "conversions", "policies", "api_requests", "conversion_summary", "denials",
            "vm_memory_state",
        ] {
            #expect(tables.contains(name), "missing \(name)")
        }
        #expect(try connection.scalar("PRAGMA auto_vacuum") == 2)  // incremental
        let store = try EventStore(path: path, logger: quietLogger)
        store.close()
        #expect(try SQLiteConnection(path: path).query("PRAGMA journal_mode").first == [.text("wal")])
    }

    /// A store from schema 5 keeps its faults: after the migration they read as access unknown,
    /// and the filter finds them by that word.
    @Test func faultsFromBeforeSchemaSixReadAsAccessUnknown() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let five = try Migrator.bundled().filter { $0.version <= 5 }
        do {
            let connection = try Migrator.openForWriting(path: path)
            try Migrator.migrate(connection, five)
            try connection.execute(
                """
                INSERT INTO vms (vm_id, name, memory_bytes, vcpus, backend, data_ram_start, data_ram_size, initial_state, created_ns)
                VALUES (1, 'old', 67108864, 1, 'alias', 2097152, 65011712, 'private', 1);
                INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source) VALUES (1, 1, 0, 5, 2097152, 4096, 8, 'emulated');
                """)
        }
        #expect(try Maintenance.migrate(path: path).to == 9)
        let queries = EventQueries(path: path)
        #expect(try queries.faults(EventFilter()).map(\.access) == ["unknown"])
        var unknown = EventFilter()
        unknown.access = "unknown"
        #expect(try queries.faults(unknown).count == 1)
        unknown.access = "read"
        #expect(try queries.faults(unknown).isEmpty)
        let page = String(decoding: try queries.faultPageJSON(EventFilter()).json, as: UTF8.self)
        #expect(page.contains(#""access":"unknown""#))
    }

    @Test func newerDatabaseIsRefused() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        try SQLiteConnection(path: path).execute("PRAGMA user_version = 99")
        #expect(throws: EventStoreError.self) { try EventStore(path: path, logger: quietLogger) }
        do {
            _ = try EventStore(path: path, logger: quietLogger)
        } catch {
            let latest = (try? Migrator.bundled().last?.version) ?? 0
            #expect(error.description.contains("schema version 99 but this memgate-agent knows only up to \(latest)"))
        }
    }

    @Test func badMigrationFoldersAreRejected() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: MigrationError.self) { try Migrator.load(directory: folder) }
        try Data("CREATE TABLE a (x);".utf8).write(to: folder.appendingPathComponent("0002_second.sql"))
        do {
            _ = try Migrator.load(directory: folder)
            Issue.record("a gap in versions must be rejected")
        } catch {
            #expect(error.description.contains("expected 1"))
        }
    }

    /// Concurrent migrators of one new file: exactly one creates the schema, none fails.
    @Test func concurrentMigrationsDoNotCollide() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let results = (0..<4).map { _ in Result { try Maintenance.migrate(path: path) } }
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        let threads = Mutex<[String]>([])
        let other = temporaryDatabase()
        defer { removeDatabase(other) }
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread {
                do { _ = try Maintenance.migrate(path: other) } catch { threads.withLock { $0.append("\(error)") } }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(threads.withLock { $0 } == [])
        #expect(try SQLiteConnection(path: other).scalar("PRAGMA user_version") == Int64(try Migrator.bundled().count))
    }

    @Test func failedMigrationRollsBackWhole() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let broken = [Migration(version: 1, name: "0001_a.sql", sql: "CREATE TABLE a (x); CREATE TABLE a (y);")]
        #expect(throws: EventStoreError.self) { try Maintenance.migrate(path: path, migrations: broken) }
        let connection = try SQLiteConnection(path: path)
        #expect(try connection.scalar("PRAGMA user_version") == 0)
        #expect(try connection.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'a'") == 0)
    }
}
