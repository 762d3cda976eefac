import EventStore
import Foundation
import HTTPServer
import Logging
import Platform
import Synchronization

/// Where the stream reads events from: the store's readers (`EventQueries`), or a fake in unit tests.
public protocol StreamSource: Sendable {
    func streamEvents(after: Int64, limit: Int) throws(EventStoreError) -> [StreamEvent]
    func streamHead() throws(EventStoreError) -> Int64
    func prunedThrough() throws(EventStoreError) -> Int64
}

extension EventQueries: StreamSource {}

/// `GET /v1/events/stream`: every reader's events, from one thread.
///
/// The store's commits wake a pump thread that reads what was committed once,
/// keeps it in a shared window (`StreamWindow`), and writes each reader's share
/// to its `HTTPStream` (the server's event loop does the socket work: no thread
/// per reader). A reader resuming from far back is fed from the database a page
/// at a time as it drains; a reader that has caught up and then lets its buffer
/// fill is sent `overflow` with the id to resume from, and closed. Events are
/// durable, so resuming loses nothing, and no reader can slow a vCPU, the writer
/// or another reader.
public final class EventStreamHub: Sendable {
    public struct Limits: Sendable {
        /// Streams open at once; one more gets 503.
        public var maxStreams = 256
        /// Streams one principal (a token's or a session's name) may hold at once.
        public var maxStreamsPerPrincipal = 32
        /// Slots of `maxStreams` only admin principals may take (a rollout's bake, an operator):
        /// read-only principals share the rest, so they can never take them all.
        public var adminReserve = 32
        /// Unsent bytes across every reader of the process. Each reader may hold at most its share
        /// (this over the readers open, never more than `bufferBytes` nor less than 64 KiB).
        public var totalBufferBytes = 32 << 20
        /// Unsent bytes a reader may hold before it counts as fallen behind.
        public var bufferBytes = 1 << 20
        /// A comment line this often keeps idle connections open.
        public var heartbeatNanos: UInt64 = 15_000_000_000
        /// Events read from the store at a time.
        public var pageSize = 512
        /// Recent events kept for readers that have caught up.
        public var windowEvents = 16_384
        /// Rounds of delivery are at least this far apart while events keep coming: a burst of
        /// small commits reaches each reader as one write, not one per commit.
        public var roundIntervalNanos: UInt64 = 4_000_000
        public init() {}
    }

    /// Who opens a stream, for the per-principal share and the admin reserve.
    public struct Opener: Sendable, Hashable {
        public var name: String
        public var isAdmin: Bool
        public init(name: String, isAdmin: Bool) {
            self.name = name
            self.isAdmin = isAdmin
        }
    }

    /// Why a stream was not opened (503).
    public enum Refusal: Error, Sendable, Equatable {
        case full(limit: Int)
        case principalShare(name: String, limit: Int)
        case readOnlyShare(limit: Int)
        case stopping

        public var message: String {
            switch self {
            case .full(let limit): "the agent serves at most \(limit) event streams; retry later"
            case .principalShare(let name, let limit):
                "\(name) already holds \(limit) event streams, the most one principal may; close one"
            case .readOnlyShare(let limit):
                "read-only principals hold \(limit) event streams, all they may share (the rest are kept for admins); retry later"
            case .stopping: "the agent is stopping"
            }
        }
    }

    private struct Shared {
        var started = false
        var reserved = 0
        var perPrincipal: [String: Int] = [:]
        var readOnly = 0
        var arrivals: [Subscriber] = []
        var signaled = false
        var stopping = false
    }

    private let source: StreamSource
    public let limits: Limits
    private let logger: Logger
    private let shared = Mutex(Shared())
    private let wakeup = NSCondition()
    private let done = DispatchSemaphore(value: 0)
    /// Streams open now (for /metrics).
    public var openStreams: Int { shared.withLock { $0.reserved } }
    /// Readers sent `overflow` so far.
    private let overflowCount = Atomic<UInt64>(0)
    public var overflows: UInt64 { overflowCount.load(ordering: .relaxed) }

    public init(source: StreamSource, limits: Limits = Limits(), logger: Logger) {
        self.source = source
        self.limits = limits
        self.logger = logger
    }

    /// The pump thread, started with the first stream (an agent nobody streams from has none).
    private func startPump() {
        let thread = Thread { [self] in
            pump()
            done.signal()
        }
        thread.name = "memgate-event-stream"
        thread.start()
    }

    /// Something was committed (or a reader drained, arrived or left): look again.
    public func signal() {
        wakeup.lock()
        shared.withLock { $0.signaled = true }
        wakeup.signal()
        wakeup.unlock()
    }

    public func stop() {
        let running = shared.withLock { state -> Bool in
            defer { state.stopping = true }
            return !state.stopping && state.started
        }
        guard running else { return }
        signal()
        done.wait()
    }

    /// A streamed response from event `after` on, or why none can be opened now.
    public func open(after: Int64, filter: StreamFilter, by opener: Opener) -> Result<HTTPResponse, Refusal> {
        let admitted = shared.withLock { state -> Result<Bool, Refusal> in
            guard !state.stopping else { return .failure(.stopping) }
            guard state.reserved < limits.maxStreams else { return .failure(.full(limit: limits.maxStreams)) }
            guard state.perPrincipal[opener.name, default: 0] < limits.maxStreamsPerPrincipal else {
                return .failure(.principalShare(name: opener.name, limit: limits.maxStreamsPerPrincipal))
            }
            let readOnlyLimit = max(limits.maxStreams - limits.adminReserve, 0)
            if !opener.isAdmin, state.readOnly >= readOnlyLimit {
                return .failure(.readOnlyShare(limit: readOnlyLimit))
            }
            state.reserved += 1
            state.perPrincipal[opener.name, default: 0] += 1
            if !opener.isAdmin { state.readOnly += 1 }
            defer { state.started = true }
            return .success(!state.started)
        }
        let start: Bool
        switch admitted {
        case .failure(let refusal): return .failure(refusal)
        case .success(let first): start = first
        }
        if start { startPump() }
        // The slot is the lease's until the stream closes, or until the response is dropped unsent.
        let lease = Lease(hub: self, opener: opener)
        return .success(
            .streaming(
                headers: [
                    ("Content-Type", "text/event-stream"), ("Cache-Control", "no-store"),
                    ("X-Accel-Buffering", "no"),
                ],
                body: HTTPStreamBody { [self] stream in attach(stream, lease: lease, after: after, filter: filter) }))
    }

    fileprivate func release(_ opener: Opener) {
        shared.withLock { state in
            state.reserved -= 1
            state.perPrincipal.decrementCount(opener.name)
            if !opener.isAdmin { state.readOnly -= 1 }
        }
    }

    private func attach(_ stream: HTTPStream, lease: Lease, after: Int64, filter: StreamFilter) {
        let subscriber = Subscriber(stream: stream, lease: lease, cursor: after, filter: filter)
        // The reconnection delay, and where this stream starts: a client that is cut off before
        // its first event resumes from here (an id without data sets EventSource's lastEventId).
        stream.send(SSEFrame.retry(milliseconds: 2000) + SSEFrame.position(after))
        stream.onClose { [weak self] in
            subscriber.closed.store(true, ordering: .releasing)
            self?.signal()
        }
        stream.onDrain { [weak self] in
            // Only a reader waiting for room needs the pump; a drain of a live reader is routine.
            if subscriber.waitingForRoom.exchange(false, ordering: .acquiringAndReleasing) { self?.signal() }
        }
        shared.withLock { $0.arrivals.append(subscriber) }
        signal()
    }

    // MARK: The pump thread

    private func pump() {
        var subscribers: [Subscriber] = []
        var window = StreamWindow(capacity: limits.windowEvents)
        var windowStale = true
        var prunedThrough: Int64 = 0
        var nextHeartbeat = MonotonicClock.nanos() + limits.heartbeatNanos
        var lastRound: UInt64 = 0
        while true {
            wait(until: nextHeartbeat)
            let sinceLast = MonotonicClock.nanos() &- lastRound
            if sinceLast < limits.roundIntervalNanos { usleep(UInt32((limits.roundIntervalNanos - sinceLast) / 1000)) }
            lastRound = MonotonicClock.nanos()
            let (arrivals, stopping) = shared.withLock { state in
                defer { state.arrivals = [] }
                return (state.arrivals, state.stopping)
            }
            if stopping {
                for subscriber in subscribers + arrivals { subscriber.stream.finish() }
                return
            }
            let before = subscribers.count
            subscribers.removeAll { $0.closed.load(ordering: .acquiring) }
            // Readers left: what their buffers held goes back to the system, not only to malloc's free lists.
            if subscribers.count < before { ProcessMemory.returnFreedMemory() }
            subscribers += arrivals
            if subscribers.isEmpty {
                // Nobody to keep alive: sleep until the next signal, not until a heartbeat long past.
                windowStale = true
                nextHeartbeat = MonotonicClock.nanos() + limits.heartbeatNanos
                continue
            }
            do throws(EventStoreError) {
                if windowStale {
                    // Nobody read while no one listened: start the window at the present.
                    window = StreamWindow(capacity: limits.windowEvents, head: try source.streamHead())
                    windowStale = false
                }
                if !arrivals.isEmpty { prunedThrough = try source.prunedThrough() }
                let more = try refresh(&window)
                var unfinished = more
                // Readers at the same cursor without a filter get the same bytes: one array for all.
                var shares: [Int64: (bytes: [UInt8], through: Int64)] = [:]
                let readerLimit = Self.readerLimit(limits, readers: subscribers.count)
                for subscriber in subscribers where !subscriber.closed.load(ordering: .acquiring) {
                    if try serve(
                        subscriber, window: window, shares: &shares, prunedThrough: prunedThrough, limit: readerLimit)
                    {
                        unfinished = true
                    }
                }
                // Work left (a long catch-up, a burst): another round at once, after others had their turn.
                if unfinished { shared.withLock { $0.signaled = true } }
            } catch {
                logger.warning("event stream could not read the store; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 0.1)
                shared.withLock { $0.signaled = true }
            }
            let now = MonotonicClock.nanos()
            if now >= nextHeartbeat {
                nextHeartbeat = now + limits.heartbeatNanos
                for subscriber in subscribers where subscriber.stream.backlog < limits.bufferBytes {
                    subscriber.stream.send(SSEFrame.heartbeat)
                }
            }
        }
    }

    private func wait(until deadline: UInt64) {
        wakeup.lock()
        defer { wakeup.unlock() }
        while !shared.withLock({ state in
            defer { state.signaled = false }
            return state.signaled
        }) {
            let now = MonotonicClock.nanos()
            guard now < deadline else { return }
            _ = wakeup.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
    }

    /// Reads what was committed since the window's head; true when a page limit left more.
    private func refresh(_ window: inout StreamWindow) throws(EventStoreError) -> Bool {
        for _ in 0..<16 {
            let page = try source.streamEvents(after: window.head, limit: limits.pageSize)
            window.append(page)
            if page.count < limits.pageSize { return false }
        }
        return true
    }

    /// What one reader may hold unsent when `readers` are open: its share of the process-wide budget. Pure.
    public static func readerLimit(_ limits: Limits, readers: Int) -> Int {
        min(limits.bufferBytes, max(64 << 10, limits.totalBufferBytes / max(readers, 1)))
    }

    /// Writes a reader's share; true when it has more to take than one turn gives.

    private func serve(
        _ subscriber: Subscriber, window: StreamWindow, shares: inout [Int64: (bytes: [UInt8], through: Int64)],
        prunedThrough: Int64, limit: Int
    ) throws(EventStoreError) -> Bool {
        let stream = subscriber.stream
        if !subscriber.toldOfPrune {
            subscriber.toldOfPrune = true
            if prunedThrough > subscriber.cursor {
                stream.send(SSEFrame.pruned(after: subscriber.cursor, through: prunedThrough))
            }
        }
        let filter = subscriber.filter
        for _ in 0..<8 {
            // Catching up: the next page when this one has drained (the drain wakes the pump).
            if !subscriber.live, stream.backlog >= limit {
                subscriber.waitingForRoom.store(true, ordering: .releasing)
                // It may have drained between the look and the flag: look once more.
                if stream.backlog >= limit { return false }
            }
            let share: (bytes: [UInt8], through: Int64)?
            if subscriber.cursor >= window.floor {
                if filter.passesEverything, let shared = shares[subscriber.cursor] {
                    share = shared
                } else {
                    share = window.frames(after: subscriber.cursor, limit: limits.pageSize, filter: filter)
                    if filter.passesEverything, let share { shares[subscriber.cursor] = share }
                }
            } else {
                let batch = try source.streamEvents(after: subscriber.cursor, limit: limits.pageSize)
                guard let last = batch.last else {
                    // Nothing final between the cursor and the window (pruned, or ids never used).
                    subscriber.cursor = window.floor
                    continue
                }
                var bytes: [UInt8] = []
                for event in batch where filter.matches(event) {
                    SSEFrame.append(id: event.id, type: event.kind, data: event.json, to: &bytes)
                }
                share = (bytes, last.id)
            }
            guard let share else {
                subscriber.live = true
                return false
            }
            if stream.backlog >= limit {
                overflowCount.add(1, ordering: .relaxed)
                stream.send(SSEFrame.overflow(resumeAfter: subscriber.cursor, bufferBytes: limit))
                stream.finish()
                subscriber.closed.store(true, ordering: .releasing)
                return false
            }
            subscriber.cursor = share.through
            if !share.bytes.isEmpty { stream.send(share.bytes) }
        }
        return true
    }
}

/// A reserved stream slot, given back when the last reference goes.
private final class Lease: Sendable {
    let hub: EventStreamHub
    let opener: EventStreamHub.Opener

    init(hub: EventStreamHub, opener: EventStreamHub.Opener) {
        self.hub = hub
        self.opener = opener
    }

    deinit {
        hub.release(opener)
    }
}

/// One reader. The pump thread alone touches `cursor`, `live` and `toldOfPrune`.
private final class Subscriber: @unchecked Sendable {
    let stream: HTTPStream
    let lease: Lease
    let filter: StreamFilter
    /// The last event id this reader has been given or had filtered out.
    var cursor: Int64
    /// Caught up at least once: from then on, a full buffer means it fell behind.
    var live = false
    var toldOfPrune = false
    let closed = Atomic<Bool>(false)
    /// Set while a catching-up reader waits for its buffer to drain.
    let waitingForRoom = Atomic<Bool>(false)

    init(stream: HTTPStream, lease: Lease, cursor: Int64, filter: StreamFilter) {
        self.stream = stream
        self.lease = lease
        self.cursor = cursor
        self.filter = filter
    }
}
