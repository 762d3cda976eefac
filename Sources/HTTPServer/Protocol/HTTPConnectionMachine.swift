/// One connection's protocol logic as a pure state machine: bytes and
/// completions in, actions out. The event loop performs the actions.
///
/// Requests are handled one at a time in arrival order (pipelined requests
/// wait in the buffer), so responses always leave in request order.
public struct HTTPConnectionMachine: Sendable {
    public enum Action: Sendable, Equatable {
        /// Hand the request to a handler; call `completed` with its response.
        case dispatch(HTTPRequest)
        /// Write the response; close the connection afterwards when `close`.
        /// `omitBody` for HEAD requests (Content-Length still describes the body).
        case send(HTTPResponse, close: Bool, omitBody: Bool)
        /// Write the head of a streamed response and open its stream; the connection
        /// carries nothing else and closes when the stream ends.
        case stream(HTTPResponse)
        /// Close now, writing nothing.
        case close
    }

    private enum Phase: Sendable, Equatable {
        /// Waiting for (more of) a request.
        case reading
        /// A handler has the current request.
        case handling(keepAlive: Bool, head: Bool)
        /// A streamed response is being written: input is read only to notice the peer leaving.
        case streaming
        /// A final response was sent or the peer left: nothing more happens.
        case closed
    }

    public let limits: HTTPLimits
    private var parser: HTTPRequestParser
    private var buffer: [UInt8] = []
    private var phase = Phase.reading
    /// What the current deadline guards.
    private enum Deadline: Sendable, Equatable {
        /// Between requests on a keep-alive connection.
        case idle
        /// From a request's first byte to the end of its headers.
        case header
        /// From the end of the headers to the end of the body: set once, never renewed.
        case body
    }
    /// When the current deadline passes, and what it guards.
    private var deadline: UInt64
    private var deadlineKind = Deadline.idle

    public init(limits: HTTPLimits = HTTPLimits(), now: UInt64) {
        self.limits = limits
        parser = HTTPRequestParser(limits: limits)
        deadline = now &+ limits.idleTimeoutNanos
    }

    /// True while a handler holds a request (no timeouts apply then).
    public var isHandling: Bool {
        if case .handling = phase { return true }
        return false
    }

    public var isClosed: Bool { phase == .closed }

    /// Bytes buffered but not yet parsed into a request.
    public var bufferedBytes: Int { buffer.count }

    /// Whether the event loop should keep reading: not while a handler works and
    /// enough is buffered for the next request already (back-pressure on pipelining).
    public var wantsInput: Bool {
        switch phase {
        case .reading: true
        case .handling: buffer.count < limits.maxRequestLineBytes + limits.maxHeaderBytes + limits.maxBodyBytes
        case .streaming: true
        case .closed: false
        }
    }

    public mutating func received(_ bytes: some Collection<UInt8>, now: UInt64) -> [Action] {
        guard phase != .closed, phase != .streaming else { return [] }
        if buffer.isEmpty, case .reading = phase {
            // First byte of a new request: the header clock starts.
            deadline = now &+ limits.headerTimeoutNanos
            deadlineKind = .header
        }
        buffer.append(contentsOf: bytes)
        guard case .reading = phase else { return [] }
        return advance(now: now)
    }

    /// The handler's response to the dispatched request.
    public mutating func completed(_ response: HTTPResponse, now: UInt64) -> [Action] {
        guard case .handling(let keepAlive, let head) = phase else { return [] }
        if response.stream != nil {
            // Nothing may follow a body that ends with the connection; a HEAD gets the head alone.
            buffer.removeAll()
            if head {
                phase = .closed
                return [.send(response, close: true, omitBody: true)]
            }
            phase = .streaming
            return [.stream(response)]
        }
        let close = !keepAlive || response.header("Connection")?.lowercased() == "close"
        if close {
            phase = .closed
            return [.send(response, close: true, omitBody: head)]
        }
        phase = .reading
        deadline = now &+ limits.idleTimeoutNanos
        deadlineKind = .idle
        if !buffer.isEmpty {
            deadline = now &+ limits.headerTimeoutNanos
            deadlineKind = .header
        }
        let sent = Action.send(response, close: false, omitBody: head)
        return buffer.isEmpty ? [sent] : [sent] + advance(now: now)
    }

    /// The peer closed its side (or the socket failed).
    public mutating func peerClosed() -> [Action] {
        guard phase != .closed else { return [] }
        // A handler's answer still to come has nowhere to go: `completed` drops it once closed.
        phase = .closed
        return [.close]
    }

    /// Checks the deadline: 408 for a request not finished in time, a silent close when idle.
    public mutating func tick(now: UInt64) -> [Action] {
        guard case .reading = phase, now >= deadline else { return [] }
        phase = .closed
        switch deadlineKind {
        case .idle where buffer.isEmpty:
            return [.close]
        case .idle, .header:
            let what = "headers not complete within \(Self.seconds(limits.headerTimeoutNanos))"
            return [.send(.error(408, code: "request_timeout", message: what), close: true, omitBody: false)]
        case .body:
            let what = "request body not complete within \(Self.seconds(limits.bodyTimeoutNanos)) of its headers"
            return [.send(.error(408, code: "request_timeout", message: what), close: true, omitBody: false)]
        }
    }

    private static func seconds(_ nanos: UInt64) -> String {
        nanos % 1_000_000_000 == 0 ? "\(nanos / 1_000_000_000) s" : "\(nanos / 1_000_000) ms"
    }

    private mutating func advance(now: UInt64) -> [Action] {
        guard !buffer.isEmpty else { return [] }
        switch parser.parse(buffer) {
        case .needMore:
            if parser.isWaitingForBody && deadlineKind != .body {
                // Headers are done: the whole body has one deadline, which progress does not renew
                // (a peer dripping a byte at a time cannot hold the connection).
                deadline = now &+ limits.bodyTimeoutNanos
                deadlineKind = .body
            }
            return []
        case .request(let request, let consumed):
            buffer.removeFirst(consumed)
            deadlineKind = .idle
            phase = .handling(keepAlive: request.keepAlive, head: request.method == .HEAD)
            return [.dispatch(request)]
        case .failure(let error):
            phase = .closed
            buffer.removeAll()
            return [.send(.error(error.status, code: error.code, message: error.message), close: true, omitBody: false)]
        }
    }
}
