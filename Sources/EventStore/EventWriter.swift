import Foundation
import Logging
import MemoryModel
import Platform
import SQLite

/// The store's single writer thread. Callers enqueue statements; the thread
/// commits everything queued so far in one transaction (a group commit across
/// vCPUs) and then wakes whoever waits for those statements.
final class EventWriter: @unchecked Sendable {
    struct Write {
        var sql: String
        var values: [SQLValue]
        /// The event statement this is, when the ring may carry it (nil: only SQLite may).
        let ringStatement: EventRingCodec.Statement?
        /// Where the ring holds this write's record (0: not in the ring).
        var ringSequence: UInt64 = 0

        init(sql: String, values: [SQLValue]) {
            self.sql = sql
            self.values = values
            ringStatement = nil
        }

        /// An event statement, which the ring may carry.
        init(_ statement: EventRingCodec.Statement, values: [SQLValue]) {
            sql = statement.sql
            self.values = values
            ringStatement = statement
        }
    }

    private let connection: SQLiteConnection
    /// The audit chain's heads; used on the writer thread only.
    private var chain: ChainLinker
    /// Memory checkpoints of the VMs being recorded; writer thread only.
    private var checkpoints = CheckpointKeeper()
    /// Event records durable before their commit (nil with `Durability.full`). Guarded by `condition`.
    private let ring: EventRing?
    private let logger: Logger
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Write] = []
    private var enqueued: UInt64 = 0
    private var committed: UInt64 = 0
    private var failure: RecordingFailure?
    private var stopping = false
    private var stopped = false
    /// Threads in `waitCommitted`: while there are any, the writer commits at once.
    private var waiters = 0
    /// When the oldest write in the queue arrived (the queue is committed at most `lingerSeconds` later).
    private var oldestQueued: Date?

    /// How long durable writes may sit in the queue: batching them costs vCPUs nothing
    /// (they do not wait) and spares the writer a wake-up per event. Short, because the event
    /// stream's readers see an event only once it is committed.
    static let lingerSeconds = 0.002
    /// A queue this long is committed without lingering.
    static let batchLimit = 4096
    private(set) var batches: UInt64 = 0
    private var latency = LatencyHistogram()
    /// Called once, on the writer thread, when recording fails for good.
    private var failureHandlers: [@Sendable (RecordingFailure) -> Void] = []
    /// Called on the writer thread after each commit.
    private var commitHandlers: [@Sendable () -> Void] = []

    /// Writes queued and not yet committed, and how long the oldest has waited.
    var backlog: (writes: UInt64, oldestSeconds: Double) {
        condition.lock()
        defer { condition.unlock() }
        let waiting = enqueued &- committed
        return (waiting, waiting == 0 ? 0 : oldestQueued.map { Date().timeIntervalSince($0) } ?? 0)
    }

    /// Rows chained as they were inserted, and by reading them back (the writer's own count; read under the lock).
    var chainCounts: (inline: Int, readBack: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (chainInline, chainReadBack)
    }
    private var chainInline = 0
    private var chainReadBack = 0

    var commitLatency: LatencyHistogram {
        condition.lock()
        defer { condition.unlock() }
        return latency
    }

    init(connection: SQLiteConnection, chain: ChainLinker, ring: EventRing?, logger: Logger) {
        self.connection = connection
        self.chain = chain
        self.ring = ring
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "memgate-event-writer"
        thread.start()
    }

    /// Queues writes (in order, atomically with `prepare`) and returns the sequence
    /// number to wait for. `prepare` runs under the queue lock, so ids it hands
    /// out follow enqueue order.
    func enqueue<T>(_ prepare: () -> (T, [Write])) -> (T, UInt64) {
        condition.lock()
        defer { condition.unlock() }
        let (value, writes) = prepare()
        if queue.isEmpty { oldestQueued = Date() }
        queue.append(contentsOf: writes)
        enqueued += UInt64(writes.count)
        condition.broadcast()
        return (value, enqueued)
    }

    /// Like `enqueue`, and also copies the writes into the ring when it has room:
    /// then they are durable at once and `durable` is true (nobody needs to wait).
    func enqueueDurably<T>(_ prepare: () -> (T, [Write])) -> (T, sequence: UInt64, durable: Bool) {
        condition.lock()
        defer { condition.unlock() }
        var (value, writes) = prepare()
        var durable = false
        if let ring, failure == nil, let record = EventRingCodec.encode(writes), let ringSequence = ring.append(record)
        {
            for index in writes.indices { writes[index].ringSequence = ringSequence }
            durable = true
        }
        let wasEmpty = queue.isEmpty
        if wasEmpty { oldestQueued = Date() }
        queue.append(contentsOf: writes)
        enqueued += UInt64(writes.count)
        // Durable writes need no prompt commit: wake the writer only to start its linger timer, or when someone waits.
        if !durable || wasEmpty || queue.count >= Self.batchLimit { condition.broadcast() }
        return (value, enqueued, durable)
    }

    /// Blocks until write `sequence` is committed; returns the error if the store failed.
    func waitCommitted(_ sequence: UInt64) -> RecordingFailure? {
        condition.lock()
        defer { condition.unlock() }
        waiters += 1
        condition.broadcast()
        while committed < sequence && failure == nil { condition.wait() }
        waiters -= 1
        return committed >= sequence ? nil : failure
    }

    /// Why recording stopped for good, if it has.
    var failed: RecordingFailure? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Runs `handler` once when recording fails (at once if it already has).
    func onCommit(_ handler: @escaping @Sendable () -> Void) {
        condition.lock()
        commitHandlers.append(handler)
        condition.unlock()
    }

    func onFailure(_ handler: @escaping @Sendable (RecordingFailure) -> Void) {
        condition.lock()
        let already = failure
        if already == nil { failureHandlers.append(handler) }
        condition.unlock()
        if let already { handler(already) }
    }

    /// Blocks until every write queued so far is committed (or the store failed).
    func waitForEverythingQueued() {
        condition.lock()
        let sequence = enqueued
        condition.unlock()
        _ = waitCommitted(sequence)
    }

    /// Commits what is queued, then stops the thread.
    func close() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while !(stopping || !queue.isEmpty && (waiters > 0 || queue.count >= Self.batchLimit)) {
                if queue.isEmpty {
                    condition.wait()
                } else if let oldest = oldestQueued,
                    !condition.wait(until: oldest.addingTimeInterval(Self.lingerSeconds))
                {
                    break
                }
            }
            if queue.isEmpty && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = queue
            let last = enqueued
            queue.removeAll(keepingCapacity: true)
            // Failure is final: nothing after a failed batch is committed, so no waiter
            // is ever told a write is durable in SQLite unless it is.
            if failure != nil {
                condition.broadcast()
                condition.unlock()
                continue
            }
            condition.unlock()
            let started = MonotonicClock.nanos()
            let error = commit(batch)
            let elapsed = MonotonicClock.nanos() - started

            condition.lock()
            latency.observe(nanos: elapsed)
            if let error {
                failure = error
                let handlers = failureHandlers
                failureHandlers = []
                logger.error("event store write failed; recording stopped", metadata: ["error": "\(error)"])
                condition.broadcast()
                condition.unlock()
                for handler in handlers { handler(error) }
                continue
            } else {
                committed = last
                batches += 1
                (chainInline, chainReadBack) = (chain.linkedInline, chain.linkedReadBack)
                if let ring, let newest = batch.last(where: { $0.ringSequence != 0 })?.ringSequence {
                    ring.markIngested(newest)
                }
            }
            let committedHandlers = commitHandlers
            condition.broadcast()
            condition.unlock()
            for handler in committedHandlers { handler() }
        }
    }

    /// A conversion's pending row and its final update in one batch become one insert of the
    /// final row: the same rows after the commit, half the statements (most conversions
    /// begin and finish within one linger). Pure.
    static func coalesce(_ batch: [Write]) -> [Write] {
        var out: [Write] = []
        out.reserveCapacity(batch.count)
        var pendingInsert: [Int64: Int] = [:]
        for write in batch {
            switch write.ringStatement {
            case .insertConversion, .insertVMConversion:
                if case .integer(let id) = write.values.first { pendingInsert[id] = out.count }
                out.append(write)
            case .finishConversion:
                // decision, reason (nil keeps the recorded one), completed_ns, discarded_bytes, guest_result, event_id
                guard write.values.count == 6, case .integer(let id) = write.values[5], let index = pendingInsert[id],
                    out[index].values.count >= 17
                else {
                    out.append(write)
                    continue
                }
                out[index].values[9] = write.values[0]
                if write.values[1] != .null { out[index].values[10] = write.values[1] }
                out[index].values[4] = write.values[2]
                out[index].values[14] = write.values[3]
                out[index].values[15] = write.values[4]
            default:
                out.append(write)
            }
        }
        return out
    }

    private func commit(_ batch: [Write]) -> RecordingFailure? {
        do throws(SQLiteError) {
            try connection.transaction("BEGIN") { () throws(SQLiteError) in
                // Events inserted final, in id order, are chained as they go in (no read-back, no update) until one cannot be.
                var inline = chain.inlineReady
                for var write in Self.coalesce(batch) {
                    if inline {
                        switch chain.linkInline(&write) {
                        case .linked(let row): try checkpoints.observe(row, connection)
                        case .other: break
                        case .stop: inline = false
                        }
                    }
                    try connection.statement(write.sql).run(write.values)
                }
                // What became final otherwise (a finish, rows behind a pending conversion, admitted requests) joins the chain
                // in the same transaction, read back in id order; the checkpoints follow those rows too.
                try chain.extend(connection) { row throws(SQLiteError) in try checkpoints.observe(row, connection) }
            }
            chain.commit()
        } catch {
            chain.rollback()
            checkpoints.forget()
            return RecordingFailure(operation: error.operation, code: error.code, message: error.message)
        }
        // A database removed or replaced under us keeps accepting writes into a file
        // nobody can open again: that is a failure, not a commit.
        if connection.fileHasMoved {
            return RecordingFailure(
                operation: "commit",
                message:
                    "the database file \(connection.path) was removed or replaced while the agent was recording into it"
            )
        }
        return nil
    }
}
