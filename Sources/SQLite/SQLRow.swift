/// The columns of one row, read by index: a result row of SQLite (`Statement`), or the values a
/// statement is about to bind (`ValueRow`). What renders a row (its API JSON, its audit-chain bytes)
/// is written once, against this, and gives the same bytes from either.
public protocol SQLRow {
    func int64(_ column: Int32) -> Int64
    func unsigned(_ column: Int32) -> UInt64
    func isNull(_ column: Int32) -> Bool
    func text(_ column: Int32) -> String
    func withText<T>(_ column: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T
}

extension Statement: SQLRow {}

/// Bound values as a row: column `i` is value `i`. A column past the end, or of another type, reads as
/// SQLite would read it (NULL: 0 and ""); integers read as text give their decimal form.
public struct ValueRow: SQLRow {
    public let values: [SQLValue]

    public init(_ values: [SQLValue]) { self.values = values }

    private func value(_ column: Int32) -> SQLValue {
        let index = Int(column)
        return index >= 0 && index < values.count ? values[index] : .null
    }

    public func int64(_ column: Int32) -> Int64 {
        switch value(column) {
        case .integer(let number): number
        case .text(let text): Int64(text) ?? 0
        case .null: 0
        }
    }

    public func unsigned(_ column: Int32) -> UInt64 { UInt64(bitPattern: int64(column)) }

    public func isNull(_ column: Int32) -> Bool { value(column) == .null }

    public func text(_ column: Int32) -> String {
        switch value(column) {
        case .integer(let number): String(number)
        case .text(let text): text
        case .null: ""
        }
    }

    public func withText<T>(_ column: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        // Safety: the buffer lives for the call only, as Statement.withText promises of SQLite's.
        Array(text(column).utf8).withUnsafeBufferPointer(body)
    }
}
