import Foundation
import MemoryModel
import SQLite

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
    /// The store's view of a migration failure.
    init(_ error: MigrationError) {
        switch error {
        case .sqlite(let error): self = .sqlite(error)
        case .schemaTooNew(let database, let binary): self = .schemaTooNew(database: database, binary: binary)
        case .unusable(let message): self = .migrations(message)
        case .unsafeFile(let error): self = .unsafeFile(error)
        }
    }

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
        } catch let error as MigrationError {
            throw EventStoreError(error)
        } catch {
            throw .migrations("\(error)")
        }
    }
}
