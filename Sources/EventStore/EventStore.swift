import Foundation
import Logging
import MemoryModel
import Platform
import SQLite
import Synchronization

/// How hard a commit tries to reach the disk (`PRAGMA synchronous`).
public enum Durability: String, Sendable, CaseIterable {
    /// WAL + NORMAL: a committed event survives the agent process dying (kill -9, crash).
    case normal
    /// WAL + FULL: a committed event also survives power loss or a kernel crash.
    case full
}

/// The SQLite event store: records every memory fault and conversion, durable
/// before the vCPU that caused it resumes (in the event ring at once, or, with
/// `Durability.full` or a full ring, by a group commit across vCPUs), and keeps
/// VMs and policy versions for audit.
public final class EventStore: EventSink {
    public let path: String
    let writer: EventWriter
    /// Held for the store's life: event and VM ids are allocated in this process.
    private let ownership: WriterLock
    struct IDs {
        var nextEvent: Int64
        var nextVM: Int64
    }
    let ids: Mutex<IDs>
    /// VMs a previous agent left without an end, closed as `lost` when this store opened.
    public let recovered: RecoveryReport

    /// Opens (creating and migrating) the database at `path`. VMs that a previous
    /// agent left without an end are closed as `lost`, their pending conversions
    /// marked `incomplete`.
    /// - Parameter closeLostVMs: false when the caller adopts VMs whose processes outlived their agent
    ///   (it then closes the ones it cannot adopt itself).
    public init(
        path: String, durability: Durability = .normal, migrations: [Migration]? = nil, closeLostVMs: Bool = true,
        logger: Logger
    ) throws(EventStoreError) {
        self.path = path
        ownership = try WriterLock(databasePath: path)
        do throws(StoreFileError) {
            // A ring that is a link or not the agent's own was put there by someone else: refuse, touch nothing.
            try StoreFiles.check(path + "-ring")
        } catch {
            throw .unsafeFile(error)
        }
        var ring: EventRing?
        if durability == .normal {
            do {
                ring = try EventRing(databasePath: path)
            } catch {
                // Recording still works without it: vCPUs then wait for each group commit.
                logger.warning(
                    "event ring unavailable; every event now waits for its SQLite commit",
                    metadata: ["error": "\(error)"])
            }
        }
        let (initial, recovered, writer) = try EventStoreError.wrapping {
            let connection = try Migrator.openForWriting(path: path)
            try connection.execute("PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
            try connection.execute("PRAGMA foreign_keys = ON")
            try Migrator.migrate(connection, try migrations ?? Migrator.bundled())
            // What a dead agent left in the ring goes in before anything else looks at the tables.
            let replayed = try ring.map { ring throws(SQLiteError) in try Self.apply(ring, to: connection) } ?? 0
            let recovered =
                closeLostVMs
                ? try Self.closeLostVMs(connection, atNanos: MonotonicClock.wallNanos(), replayed: replayed)
                : RecoveryReport(vms: 0, incompleteConversions: 0, replayedRecords: replayed)
            let lastEvent =
                try connection.scalar(
                    """
                    SELECT max(\(Self.highestEventIDs), coalesce((SELECT last_id FROM id_watermarks WHERE name = 'event'), 0))
                    """) ?? 0
            let lastVM =
                try connection.scalar(
                    """
                    SELECT max(coalesce((SELECT max(vm_id) FROM vms), 0), coalesce((SELECT last_id FROM id_watermarks WHERE name = 'vm'), 0))
                    """) ?? 0
            // Rows from before schema 9, or left unchained by a replayed ring, join the chain before anything new.
            let chain = try ChainLinker.catchUp(connection)
            return (
                IDs(nextEvent: lastEvent + 1, nextVM: lastVM + 1), recovered,
                EventWriter(connection: connection, chain: chain, ring: ring, logger: logger)
            )
        }
        if recovered.replayedRecords > 0 {
            logger.notice(
                "applied events a previous agent left in the ring",
                metadata: ["records": "\(recovered.replayedRecords)"])
        }
        if recovered.vms > 0 {
            logger.warning(
                "closed VMs a previous agent left running as lost",
                metadata: [
                    "vms": "\(recovered.vms)", "incomplete_conversions": "\(recovered.incompleteConversions)",
                ])
        }
        ids = Mutex(initial)
        self.recovered = recovered
        self.writer = writer
    }

    /// The highest event id in each table that takes one, as SQL arguments of `max(...)`.
    static let highestEventIDs = """
        coalesce((SELECT max(event_id) FROM memory_faults), 0), coalesce((SELECT max(event_id) FROM conversions), 0),
        coalesce((SELECT max(event_id) FROM vm_events), 0), coalesce((SELECT max(event_id) FROM policy_applications), 0),
        coalesce((SELECT max(through_event_id) FROM prunes), 0)
        """

    public func close() {
        writer.close()
        ownership.release()
    }

    /// Why recording stopped for good (a commit failed, or the file was removed), if it has.
    public var failure: RecordingFailure? { writer.failed }

    /// Runs `handler` once when recording fails for good (at once if it already has).
    public func onFailure(_ handler: @escaping @Sendable (RecordingFailure) -> Void) {
        writer.onFailure(handler)
    }

    /// Waits until everything recorded so far is committed to SQLite (readers call it first).
    public func flush() {
        writer.waitForEverythingQueued()
    }

    /// Runs `handler` on the writer's thread after every commit (keep it short: wake someone).
    public func onCommit(_ handler: @escaping @Sendable () -> Void) {
        writer.onCommit(handler)
    }

    /// Rows of the audit chains linked as they were inserted, and by reading them back after.
    public var auditChainLinks: (inline: Int, readBack: Int) { writer.chainCounts }

    /// Transactions committed so far (each may hold many events).
    public var commitCount: UInt64 { writer.batches }

    /// How long commits took.
    public var commitLatency: LatencyHistogram { writer.commitLatency }
    /// Writes not yet committed, and the age of the oldest (the store's lag behind the VMs).
    public var backlog: (writes: UInt64, oldestSeconds: Double) { writer.backlog }

    func receipt(_ sequence: UInt64) -> EventReceipt {
        EventReceipt { [writer] in writer.waitCommitted(sequence) }
    }
}
