import APITypes

/// Where `audit pull` writes. A page of one host's events and its new cursor are
/// written in one transaction, so an interrupted pull resumes exactly where the
/// last committed page ended: nothing missing, nothing twice.
public protocol AuditSink: AnyObject {
    /// The stored cursor of `host` (0 when new), registering it.
    func cursor(host: String, url: String) throws(AuditError) -> Int64
    /// Writes events (all of `host`, ids above the stored cursor, their chain verified) and moves the
    /// cursor to `after` and the host's event chain head to `head`.
    func write(host: String, events: [EventEntry], after: Int64, head: StoredChainHead?, atNanos: UInt64)
        throws(AuditError)
    /// The chain head ("events" or "requests") stored for `host` by the last pull (nil: none yet).
    func chainHead(host: String, chain: String) throws(AuditError) -> StoredChainHead?
    /// Records a break in a host's chain.
    func record(host: String, break: ChainBreak, atNanos: UInt64) throws(AuditError)
    /// Records a prune on a host that cut rows before they were pulled.
    func recordCut(host: String, chain: String, from: Int64, through: Int64, pruned: Int64, atNanos: UInt64)
        throws(AuditError)
    /// Records the VMs the host reports (replacing earlier reports of the same ids).
    func write(host: String, vms: [VMInfo]) throws(AuditError)
    /// The versions among `versions` whose documents are not stored yet.
    func missingDocuments(_ versions: Set<String>) throws(AuditError) -> Set<String>
    /// Stores documents (by version, checked by the caller) and the host's policy history, in one transaction.
    func write(host: String, documents: [PolicyDocumentRecord], history: [PolicyHistoryEntry]) throws(AuditError)
    /// The stored `api_requests` cursor of `host`.
    func requestCursor(host: String) throws(AuditError) -> Int64
    /// Writes a page of the host's admitted requests (chain verified), moves its cursor to `after` and its request chain head to `head`.
    func write(host: String, requests: [APIRequestRecord], after: Int64, head: StoredChainHead?) throws(AuditError)
}

/// A policy document whose bytes were checked against its version.
public struct PolicyDocumentRecord: Sendable, Equatable {
    public var version: String
    public var name: String?
    public var document: String
    public init(version: String, name: String?, document: String) {
        self.version = version
        self.name = name
        self.document = document
    }
}

public struct AuditError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
