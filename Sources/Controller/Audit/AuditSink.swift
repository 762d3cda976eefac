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
    /// The versions among `versions` whose documents are not stored yet.
    func missingDocuments(_ versions: Set<String>) throws(AuditError) -> Set<String>
    /// Stores documents (by version, checked by the caller) and the host's policy history, in one transaction.
    func write(host: String, documents: [PolicyDocumentRecord], history: [PolicyHistoryEntry]) throws(AuditError)
    /// The stored `api_requests` cursor of `host`.
    func requestCursor(host: String) throws(AuditError) -> Int64
    /// Writes a page of the host's admitted requests and moves its cursor to `after`.
    func write(host: String, requests: [APIRequestRecord], after: Int64) throws(AuditError)
}

/// A policy document whose bytes were checked against its version.
public struct PolicyDocumentRecord: Sendable, Equatable {
    public var version: String
    public var name: String?
    public var document: String
    public init(version: String, name: String?, document: String) { self.version = version; self.name = name; self.document = document }
}

public struct AuditError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
