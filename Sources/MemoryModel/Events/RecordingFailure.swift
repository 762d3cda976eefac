/// Why a record could not be made durable. Final: once a store fails, nothing more is
/// committed. Carries the store's own code (an SQLite result code) where there is one.
public struct RecordingFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the store was doing (`commit`, `open`, ...).
    public let operation: String
    /// The store's result code (SQLite's), when the failure came with one.
    public let code: Int32?
    public let message: String

    public init(operation: String, code: Int32? = nil, message: String) {
        self.operation = operation
        self.code = code
        self.message = message
    }

    public var description: String {
        "\(operation): \(message)" + (code.map { " (SQLite code \($0))" } ?? "")
    }
}
