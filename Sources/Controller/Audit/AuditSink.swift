import APITypes

/// Where `audit pull` writes. A page of one host's events and its new cursor are
/// written in one transaction, so an interrupted pull resumes exactly where the
/// last committed page ended: nothing missing, nothing twice.
public protocol AuditSink: AnyObject {
    /// The stored cursor of `host` (0 when new), registering it.
    func cursor(host: String, url: String) throws(AuditError) -> Int64
    /// Writes events (all of `host`, ids above the stored cursor) and moves the cursor to `after`.
    func write(host: String, events: [EventEntry], after: Int64, atNanos: UInt64) throws(AuditError)
    /// Records the VMs the host reports (replacing earlier reports of the same ids).
    func write(host: String, vms: [VMInfo]) throws(AuditError)
}

public struct AuditError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
