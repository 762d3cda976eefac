import Foundation

/// Streams a VM's console output to a slow consumer (stdout) without ever
/// making a vCPU wait for it: vCPUs append to a bounded queue and return; one
/// writer thread per VM hands the bytes to the sink outside every lock. When the
/// queue is full, new output is dropped and counted. A sink that fails (EPIPE,
/// ENOSPC) ends the streaming, never the VM.
final class ConsoleStreamer: @unchecked Sendable {
    /// Returns false when it can take no more (the streaming stops).
    typealias Sink = @Sendable ([UInt8]) -> Bool

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [UInt8] = []
    private var dropped = 0
    private var finished = false
    private var sinkFailed = false
    private var writing = false
    /// Bytes handed to the sink and not yet confirmed written.
    private var inFlight = 0
    private let capacity: Int

    init(capacity: Int, name: String, sink: @escaping Sink) {
        self.capacity = max(capacity, 1)
        let thread = Thread { [self] in run(sink) }
        thread.name = "\(name)-console"
        thread.start()
    }

    /// Queues bytes for the sink; drops them when the queue is full. Never blocks on the sink.
    func offer(_ bytes: [UInt8]) {
        condition.lock()
        defer { condition.unlock() }
        guard !finished else { return }
        if sinkFailed || queue.count + bytes.count > capacity {
            dropped += bytes.count
            return
        }
        queue += bytes
        condition.signal()
    }

    /// Bytes dropped because the consumer was too slow (or stopped taking them).
    var droppedBytes: Int {
        condition.lock()
        defer { condition.unlock() }
        return dropped
    }

    /// No more output will come. Waits up to `timeout` for the queue to drain; what
    /// is left then (a consumer that stopped reading) counts as dropped.
    func finish(timeout: Duration = .seconds(2)) {
        let deadline = Date(
            timeIntervalSinceNow: Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        condition.lock()
        finished = true
        condition.broadcast()
        while (!queue.isEmpty || writing) && !sinkFailed {
            if !condition.wait(until: deadline) { break }
        }
        if !sinkFailed {
            // A consumer that stopped reading: what is queued, and what the sink is stuck on, was not written.
            dropped += queue.count + (writing ? inFlight : 0)
        }
        queue.removeAll()
        condition.unlock()
    }

    private func run(_ sink: Sink) {
        while true {
            condition.lock()
            while queue.isEmpty && !finished { condition.wait() }
            if queue.isEmpty && finished {
                condition.unlock()
                return
            }
            let chunk = queue
            queue.removeAll(keepingCapacity: true)
            writing = true
            inFlight = chunk.count
            condition.unlock()

            let ok = sink(chunk)

            condition.lock()
            writing = false
            inFlight = 0
            if !ok {
                sinkFailed = true
                dropped += queue.count
                queue.removeAll()
            }
            condition.broadcast()
            condition.unlock()
            if !ok { return }
        }
    }
}
