import Foundation
import Logging

/// The store's single writer thread. Callers enqueue statements; the thread
/// commits everything queued so far in one transaction (a group commit across
/// vCPUs) and then wakes whoever waits for those statements.
final class EventWriter: @unchecked Sendable {
    struct Write {
        let sql: String
        let values: [SQLValue]
    }

    private let connection: SQLiteConnection
    private let logger: Logger
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Write] = []
    private var enqueued: UInt64 = 0
    private var committed: UInt64 = 0
    private var failure: String?
    private var stopping = false
    private var stopped = false
    private(set) var batches: UInt64 = 0
    private var latency = LatencyHistogram()

    var commitLatency: LatencyHistogram {
        condition.lock()
        defer { condition.unlock() }
        return latency
    }

    init(connection: SQLiteConnection, logger: Logger) {
        self.connection = connection
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
        queue.append(contentsOf: writes)
        enqueued += UInt64(writes.count)
        condition.broadcast()
        return (value, enqueued)
    }

    /// Blocks until write `sequence` is committed; returns the error if the store failed.
    func waitCommitted(_ sequence: UInt64) -> String? {
        condition.lock()
        defer { condition.unlock() }
        while committed < sequence && failure == nil { condition.wait() }
        return committed >= sequence ? nil : failure
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
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = queue
            let last = enqueued
            queue.removeAll(keepingCapacity: true)
            condition.unlock()

            let started = WallClock.monotonicNanos()
            let error = commit(batch)
            let elapsed = WallClock.monotonicNanos() - started

            condition.lock()
            latency.observe(nanos: elapsed)
            if let error {
                failure = error
                logger.error("event store write failed; recording stopped", metadata: ["error": "\(error)"])
            } else {
                committed = last
                batches += 1
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    private func commit(_ batch: [Write]) -> String? {
        do {
            try connection.execute("BEGIN")
            do {
                for write in batch { try connection.statement(write.sql).run(write.values) }
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
            return nil
        } catch {
            return "\(error)"
        }
    }
}
