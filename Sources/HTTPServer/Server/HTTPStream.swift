import Synchronization

/// A response body that is written over time (Server-Sent Events): the head goes
/// out at once without a length, then whatever the application `send`s, until it
/// `finish`es or the peer leaves. Any thread may send; the event loop does the
/// writing, so a stream costs no thread of its own.
public final class HTTPStream: Sendable {
    private struct State {
        /// Bytes sent but not yet handed to the event loop.
        var outbox: [UInt8] = []
        /// Bytes the event loop holds that the peer has not taken yet.
        var unsent = 0
        /// The loop took bytes since the peer last had everything.
        var inFlight = false
        var finishing = false
        var closed = false
        var onClose: (@Sendable () -> Void)?
        var onDrain: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())
    /// Wakes the event loop (its eventfd) to move the outbox onto the socket.
    private let wake: @Sendable () -> Void

    init(wake: @escaping @Sendable () -> Void) {
        self.wake = wake
    }

    /// Bytes written by the application that the peer has not read yet: the stream's backlog.
    public var backlog: Int {
        state.withLock { $0.outbox.count + $0.unsent }
    }

    /// False once the peer left, the connection failed, or the server stopped.
    public var isOpen: Bool {
        state.withLock { !$0.closed && !$0.finishing }
    }

    /// Queues bytes for the peer. Returns false (and queues nothing) once the stream is closed or finishing.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        let wasEmpty: Bool? = state.withLock { state in
            guard !state.closed, !state.finishing else { return nil }
            let empty = state.outbox.isEmpty
            // The first bytes are kept as they are (no copy): a reader's share is often one array.
            if empty { state.outbox = bytes } else { state.outbox += bytes }
            return empty
        }
        guard let wasEmpty else { return false }
        if wasEmpty { wake() }
        return true
    }

    /// Sends what is queued, then closes the connection.
    public func finish() {
        let changed = state.withLock { state -> Bool in
            guard !state.closed, !state.finishing else { return false }
            state.finishing = true
            return true
        }
        if changed { wake() }
    }

    /// Runs `handler` once when the stream closes (at once if it has). Called on the event loop's thread: keep it short.
    public func onClose(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            guard !state.closed else { return true }
            state.onClose = handler
            return false
        }
        if runNow { handler() }
    }

    /// Runs `handler` each time the peer has taken every byte queued so far. Event-loop thread: keep it short.
    public func onDrain(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.onDrain = handler }
    }

    // MARK: The event loop's side

    /// What the loop should write now, and whether to close after it.
    func take() -> (bytes: [UInt8], finish: Bool) {
        state.withLock { state in
            defer { state.outbox.removeAll(keepingCapacity: false) }
            if !state.outbox.isEmpty { state.inFlight = true }
            return (state.outbox, state.finishing)
        }
    }

    /// The loop's count of bytes it holds for the peer, after a write.
    func loopHolds(_ bytes: Int) {
        let drained = state.withLock { state -> (@Sendable () -> Void)? in
            state.unsent = bytes
            guard state.inFlight, bytes == 0, state.outbox.isEmpty else { return nil }
            state.inFlight = false
            return state.onDrain
        }
        drained?()
    }

    func markClosed() {
        let handler = state.withLock { state -> (@Sendable () -> Void)? in
            guard !state.closed else { return nil }
            state.closed = true
            state.outbox = []
            state.onDrain = nil
            defer { state.onClose = nil }
            return state.onClose
        }
        handler?()
    }
}

/// How a handler asks for a streamed body: `open` receives the stream once the head is on its way.
public struct HTTPStreamBody: Sendable {
    public let open: @Sendable (HTTPStream) -> Void

    public init(open: @escaping @Sendable (HTTPStream) -> Void) {
        self.open = open
    }
}
