import CSQLite
import Foundation

/// A failed SQLite call: the result code, SQLite's message, and what we were doing.
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public let operation: String

    public var description: String { "\(operation): \(message) (SQLite code \(code))" }
}

/// A value bound to a statement parameter.
public enum SQLValue: Sendable, Equatable {
    case integer(Int64)
    case text(String)
    case null

    public static func unsigned(_ value: UInt64) -> SQLValue { .integer(Int64(bitPattern: value)) }
    public static func optional(_ value: UInt64?) -> SQLValue { value.map { .unsigned($0) } ?? .null }
}

/// One SQLite connection with its prepared statements, kept for its life.
/// Used by one thread at a time (the writer thread, or a reader's own thread).
public final class SQLiteConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private var statements: [String: Statement] = [:]
    public let path: String

    /// Opens (creating if needed) the database at `path`.
    /// `noFollow`: refuse a database path that is a symbolic link (SQLITE_OPEN_NOFOLLOW).
    public init(path: String, readOnly: Bool = false, noFollow: Bool = false, busyTimeoutMilliseconds: Int32 = 5000)
        throws(SQLiteError)
    {
        var db: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
            | (noFollow ? SQLITE_OPEN_NOFOLLOW : 0)
        let code = sqlite3_open_v2(path, &db, flags, nil)
        guard code == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: code, message: message, operation: "open \(path)")
        }
        handle = db
        self.path = path
        // Safety: installs the shim's C handler; its argument is the timeout itself, not a pointer.
        csqlite_set_busy_timeout(db, busyTimeoutMilliseconds)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        statements.removeAll()  // finalize before closing
        sqlite3_close_v2(handle)
    }

    public func error(_ code: Int32, _ operation: String) -> SQLiteError {
        SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)), operation: operation)
    }

    /// True when the database file this connection writes was removed or replaced
    /// (writes would go to a file nobody can open any more).
    public var fileHasMoved: Bool {
        // Safety: file_control with an int out-parameter owned by the shim.
        csqlite_file_has_moved(handle) == 1
    }

    /// Runs `body` in a transaction opened with `begin` (`BEGIN IMMEDIATE` takes the write lock
    /// at once); commits when it returns, rolls back when it throws.
    @discardableResult
    public func transaction<T>(_ begin: String = "BEGIN IMMEDIATE", _ body: () throws(SQLiteError) -> T)
        throws(SQLiteError) -> T
    {
        try execute(begin)
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs one or more statements that return no rows we need.
    public func execute(_ sql: String) throws(SQLiteError) {
        var message: UnsafeMutablePointer<CChar>?
        // Safety: sqlite3_exec reports an error string we own and must free.
        let code = sqlite3_exec(handle, sql, nil, nil, &message)
        guard code == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_free(message)
            throw SQLiteError(code: code, message: text, operation: "execute \(sql.prefix(60))")
        }
    }

    /// A prepared statement for `sql`, prepared once and reused.
    public func statement(_ sql: String) throws(SQLiteError) -> Statement {
        if let cached = statements[sql] { return cached }
        var raw: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard code == SQLITE_OK, let raw else { throw error(code, "prepare \(sql.prefix(60))") }
        let statement = Statement(raw: raw, connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// Runs a statement with `values` and returns every row's columns.
    @discardableResult
    public func query(_ sql: String, _ values: [SQLValue] = []) throws(SQLiteError) -> [[SQLValue]] {
        let statement = try statement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        var rows: [[SQLValue]] = []
        while try statement.step() { rows.append(statement.row()) }
        return rows
    }

    /// Runs a statement and decodes each row with `decode` (no intermediate values).
    public func rows<T>(_ sql: String, _ values: [SQLValue], _ decode: (Statement) -> T) throws(SQLiteError) -> [T] {
        let statement = try statement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        var rows: [T] = []
        while try statement.step() { rows.append(decode(statement)) }
        return rows
    }

    /// The first column of the first row as an integer.
    public func scalar(_ sql: String, _ values: [SQLValue] = []) throws(SQLiteError) -> Int64? {
        guard case .integer(let value)? = try query(sql, values).first?.first else { return nil }
        return value
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
}

/// A prepared statement. Bind, step, read, reset.
public final class Statement {
    private let raw: OpaquePointer
    private unowned let connection: SQLiteConnection
    let sql: String

    init(raw: OpaquePointer, connection: SQLiteConnection, sql: String) {
        self.raw = raw
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(raw) }

    public func bind(_ values: [SQLValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .integer(let v): code = sqlite3_bind_int64(raw, index, v)
            case .text(let v): code = csqlite_bind_text(raw, index, v, -1)
            case .null: code = sqlite3_bind_null(raw, index)
            }
            guard code == SQLITE_OK else { throw connection.error(code, "bind \(index) of \(sql.prefix(60))") }
        }
    }

    /// True when a row is ready; false when done.
    public func step() throws(SQLiteError) -> Bool {
        let code = sqlite3_step(raw)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(code, "step \(sql.prefix(60))")
        }
    }

    /// Column accessors for the current row, for readers that decode rows directly.
    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(raw, column) }
    public func unsigned(_ column: Int32) -> UInt64 { UInt64(bitPattern: sqlite3_column_int64(raw, column)) }
    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(raw, column) == SQLITE_NULL }
    public func text(_ column: Int32) -> String {
        // Safety: SQLite owns the bytes until the next step/reset; they are copied into the String at once.
        guard let pointer = sqlite3_column_text(raw, column) else { return "" }
        let count = Int(sqlite3_column_bytes(raw, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    /// The current row's text column as bytes, valid only inside `body`.
    public func withText<T>(_ column: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        // Safety: SQLite owns the bytes until the next step/reset; `body` must not keep the pointer.
        let pointer = sqlite3_column_text(raw, column)
        let count = Int(sqlite3_column_bytes(raw, column))
        return body(UnsafeBufferPointer(start: pointer, count: pointer == nil ? 0 : count))
    }

    public func row() -> [SQLValue] {
        (0..<sqlite3_column_count(raw)).map { column in
            switch sqlite3_column_type(raw, column) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(raw, column))
            case SQLITE_NULL: return .null
            default:
                // Safety: SQLite owns the text until the next step/reset; we copy it at once.
                return sqlite3_column_text(raw, column).map { .text(String(cString: $0)) } ?? .null
            }
        }
    }

    /// Runs to completion with `values`, then resets.
    public func run(_ values: [SQLValue]) throws(SQLiteError) {
        defer { reset() }
        try bind(values)
        while try step() {}
    }

    public func reset() {
        sqlite3_reset(raw)
        sqlite3_clear_bindings(raw)
    }
}
