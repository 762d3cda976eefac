import CNet
import Foundation
import Glibc
import Logging
import Platform
import Synchronization

/// The epoll loop behind `HTTPServer`. Every connection is touched only on the
/// loop thread; workers hand responses back through a queue and an eventfd.
final class EventLoop: @unchecked Sendable {
    struct Listener {
        let fd: Int32
        let isUnix: Bool
    }

    /// One socket's state; loop thread only.
    final class Connection {
        let fd: Int32
        let generation: UInt64
        let transport: HTTPTransport
        /// The peer's network (TCP; `HTTPLimits.peerPrefix`), the key of the per-peer cap.
        let network: String?
        /// Holds a slot of the token-only reserve.
        let inReserve: Bool
        /// In the reserve and not yet shown a valid credential.
        var awaitingCredential: Bool
        let acceptedNanos: UInt64
        var machine: HTTPConnectionMachine
        /// Bytes of a response not yet accepted by the kernel.
        var pending = OutputBuffer()
        /// When unsent output last moved (or appeared): the write-stall clock.
        var outputProgressNanos: UInt64 = 0
        /// A request held back while the peer does not read what it was already sent.
        var deferred: HTTPRequest?
        var closeAfterFlush = false
        /// After a final response: reading and discarding until EOF, so the
        /// peer sees our answer rather than a reset.
        var lingerUntil: UInt64?
        var watchingOutput = false
        var readingPaused = false
        /// Bytes this connection holds as counted in the loop's process-wide total.
        var accountedBytes = 0
        /// The streamed response this connection carries, once its head is sent.
        var stream: HTTPStream?

        var isUnix: Bool { if case .unix = transport { true } else { false } }

        init(
            fd: Int32, generation: UInt64, transport: HTTPTransport, network: String?, inReserve: Bool, now: UInt64,
            machine: HTTPConnectionMachine
        ) {
            self.fd = fd
            self.generation = generation
            self.transport = transport
            self.network = network
            self.inReserve = inReserve
            self.awaitingCredential = inReserve
            self.acceptedNanos = now
            self.machine = machine
        }
    }

    private struct Completion {
        let fd: Int32
        let generation: UInt64
        let response: HTTPResponse
    }

    private static let lingerNanos: UInt64 = 2_000_000_000
    private static let sweepNanos: UInt64 = 250_000_000

    private let epfd: Int32
    private let wakeFD: Int32
    /// Signals `wakeFD` from any thread, never after the loop has closed it.
    private let waker: Waker
    private let listeners: [Listener]
    private let configuration: HTTPServerConfiguration
    private let handler: HTTPHandler
    private let logger: Logger
    private let workers: WorkerPool
    private let completions = Mutex<[Completion]>([])
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    let connectionCount = Atomic<Int>(0)
    /// `bufferedBytes` as other threads see it, and the most it has been.
    let bufferedGauge = Atomic<Int>(0)
    let peakBufferedGauge = Atomic<Int>(0)

    // Loop thread only.
    private var connections: [Int32: Connection] = [:]
    /// Connections carrying a streamed response.
    private var streaming: [Int32: Connection] = [:]
    private var nextGeneration: UInt64 = 1
    /// Connections that count against the caps, by transport (lingering ones only drain and do not).
    private var activeTCP = 0
    private var activeUnix = 0
    /// Open TCP connections per peer network (the general pool only).
    private var perPeer: [String: Int] = [:]
    /// Connections in the token-only reserve, and those of each network not yet shown a credential.
    private var activeReserve = 0
    private var awaitingPerNetwork: [String: Int] = [:]
    /// Request and response bytes held by all connections (see `HTTPLimits.maxBufferedBytes`).
    private var bufferedBytes = 0
    /// Listeners are out of epoll while the process has no file descriptors left.
    private var acceptPaused = false
    private var nextSweep: UInt64 = 0
    private var dateCache = HTTPDate()
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    init(listeners: [Listener], configuration: HTTPServerConfiguration, handler: HTTPHandler, logger: Logger)
        throws(HTTPServerError)
    {
        self.listeners = listeners
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        epfd = cnet_epoll_create()
        guard epfd >= 0 else { throw HTTPServerError(operation: "epoll_create1", errno: errno) }
        wakeFD = cnet_eventfd()
        guard wakeFD >= 0 else {
            close(epfd)
            throw HTTPServerError(operation: "eventfd", errno: errno)
        }
        waker = Waker(fd: wakeFD)
        for fd in listeners.map(\.fd) + [wakeFD] {
            guard cnet_epoll_ctl(epfd, 1, fd, UInt32(CNET_IN), UInt64(fd)) == 0 else {
                throw HTTPServerError(operation: "epoll_ctl add", errno: errno)
            }
        }
        workers = WorkerPool(
            threads: configuration.workerThreads, capacity: configuration.workerQueueDepth, name: "memgate-http-worker")
    }

    deinit {
        readBuffer.deallocate()
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "memgate-http-loop"
        thread.start()
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        waker.signal()
        finished.wait()
        workers.stop()
    }

    // MARK: The loop

    private func run() {
        var events = [cnet_event](repeating: cnet_event(), count: 256)
        while !stopping.load(ordering: .acquiring) {
            let count = events.withUnsafeMutableBufferPointer { buffer in
                // Safety: the buffer holds 256 events, the most we ask for.
                cnet_epoll_wait(epfd, buffer.baseAddress, Int32(buffer.count), 100)
            }
            if count < 0 && errno != EINTR {
                logger.error("epoll_wait failed; the HTTP server stops", metadata: ["errno": "\(errno)"])
                break
            }
            let now = MonotonicClock.nanos()
            for index in 0..<max(Int(count), 0) {
                let fd = Int32(truncatingIfNeeded: events[index].data)
                let flags = events[index].events
                if fd == wakeFD {
                    cnet_eventfd_drain(wakeFD)
                    // Lowered before the work below: whatever is signalled during it wakes the loop again.
                    waker.lower()
                    drainCompletions(now: now)
                    pumpStreams(now: now)
                } else if let listener = listeners.first(where: { $0.fd == fd }) {
                    acceptAll(listener, now: now)
                } else if let connection = connections[fd] {
                    service(connection, flags: flags, now: now)
                }
            }
            if now >= nextSweep {
                nextSweep = now + Self.sweepNanos
                sweep(now: now)
            }
        }
        for connection in connections.values {
            connection.stream?.markClosed()
            close(connection.fd)
        }
        connections.removeAll()
        streaming.removeAll()
        activeTCP = 0
        activeUnix = 0
        perPeer.removeAll()
        activeReserve = 0
        awaitingPerNetwork.removeAll()
        bufferedBytes = 0
        connectionCount.store(0, ordering: .relaxed)
        for listener in listeners { close(listener.fd) }
        waker.close()
        close(epfd)
    }

    private func acceptAll(_ listener: Listener, now: UInt64) {
        while true {
            let fd = cnet_accept(listener.fd)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE {
                    // The pending connection stays in the backlog and the listener stays readable:
                    // stop watching it (no busy loop) until a connection of ours closes.
                    logger.warning("out of file descriptors; not accepting until a connection closes")
                    pauseAccepting()
                }
                return
            }
            let limits = configuration.limits
            let transport: HTTPTransport
            var network: String?
            var inReserve = false
            if listener.isUnix {
                // The operator's way in: slots of its own, which TCP clients cannot fill.
                guard activeUnix < limits.maxUnixConnections else {
                    refuse(
                        fd, code: "too_many_connections",
                        "the agent serves at most \(limits.maxUnixConnections) Unix-socket connections; retry later")
                    continue
                }
                let uid = cnet_peer_uid(fd)
                transport = .unix(uid: uid >= 0 ? Int(uid) : nil)
            } else {
                let peer = Self.peerName(fd)
                let key = limits.peerPrefix.key(HTTPTransport.tcp(peer: peer).peerAddress)
                let overNetwork = perPeer[key, default: 0] >= limits.maxConnectionsPerPeer
                if overNetwork || activeTCP >= limits.maxConnections {
                    // Past the general pool: only the reserve, which a credential must claim.
                    guard activeReserve < limits.tokenReservedConnections,
                        awaitingPerNetwork[key, default: 0] < limits.reservePerNetwork
                    else {
                        if overNetwork {
                            refuse(
                                fd, code: "too_many_connections_from_peer",
                                "the agent serves at most \(limits.maxConnectionsPerPeer) connections from one network (\(key)); close some and retry"
                            )
                        } else {
                            refuse(
                                fd, code: "too_many_connections",
                                "the agent serves at most \(limits.maxConnections) connections; retry later")
                        }
                        continue
                    }
                    inReserve = true
                }
                cnet_set_nodelay(fd)
                transport = .tcp(peer: peer)
                network = key
            }
            let connection = Connection(
                fd: fd, generation: nextGeneration, transport: transport, network: network, inReserve: inReserve,
                now: now, machine: HTTPConnectionMachine(limits: limits, now: now))
            nextGeneration += 1
            guard cnet_epoll_ctl(epfd, 1, fd, UInt32(CNET_IN | CNET_RDHUP), UInt64(fd)) == 0 else {
                close(fd)
                continue
            }
            connections[fd] = connection
            if connection.isUnix {
                activeUnix += 1
            } else if let network {
                if inReserve {
                    activeReserve += 1
                    awaitingPerNetwork[network, default: 0] += 1
                } else {
                    activeTCP += 1
                    perPeer[network, default: 0] += 1
                }
            }
            connectionCount.store(connections.count, ordering: .relaxed)
        }
    }

    /// Over a connection cap: one 503, then close.
    private func refuse(_ fd: Int32, code: String, _ message: String) {
        let response = HTTPResponse.error(503, code: code, message: message, headers: [("Retry-After", "1")])
        let head = HTTPResponseEncoder.head(response, close: true, date: nil)
        head.withUnsafeBytes { h in
            response.body.withUnsafeBytes { b in
                // Safety: both buffers stay alive for the call; a short write is acceptable here.
                _ = cnet_send2(fd, h.baseAddress, h.count, b.baseAddress, b.count)
            }
        }
        shutdown(fd, Int32(SHUT_WR))
        close(fd)
    }

    private func service(_ connection: Connection, flags: UInt32, now: UInt64) {
        if flags & UInt32(CNET_OUT) != 0 {
            flush(connection, now: now)
            guard connections[connection.fd] === connection else { return }
        }
        if flags & UInt32(CNET_IN | CNET_ERR | CNET_HUP | CNET_RDHUP) != 0 {
            readAvailable(connection, now: now)
        }
    }

    private func readAvailable(_ connection: Connection, now: UInt64) {
        while true {
            // Safety: readBuffer is owned by the loop and only used on its thread.
            let count = cnet_recv(connection.fd, readBuffer.baseAddress, readBuffer.count)
            if count > 0 {
                if connection.lingerUntil != nil { continue }  // discarding until EOF
                let actions = connection.machine.received(
                    UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), now: now)
                perform(actions, on: connection, now: now)
                guard connections[connection.fd] === connection else { return }
                settle(connection)
                if connection.readingPaused || count < readBuffer.count { return }
            } else if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                if connection.lingerUntil != nil { return finalClose(connection) }
                perform(connection.machine.peerClosed(), on: connection, now: now)
                if connections[connection.fd] === connection && connection.pending.isEmpty { finalClose(connection) }
                return
            } else {
                return
            }
        }
    }

    private func perform(_ actions: [HTTPConnectionMachine.Action], on connection: Connection, now: UInt64) {
        for action in actions {
            switch action {
            case .dispatch(let request):
                dispatch(request, on: connection, now: now)
            case .send(let response, let close, let omitBody):
                send(response, close: close, omitBody: omitBody, on: connection, now: now)
            case .stream(let response):
                startStream(response, on: connection, now: now)
            case .close:
                finalClose(connection)
            }
            guard connections[connection.fd] === connection else { return }
        }
    }

    private func dispatch(_ request: HTTPRequest, on connection: Connection, now: UInt64) {
        if connection.awaitingCredential {
            guard handler.presentsValidCredential(request) else {
                refuse(connection.fd, code: "too_many_connections", Self.reserveRefusal)
                return dropConnection(connection)
            }
            connection.awaitingCredential = false
            if let network = connection.network { awaitingPerNetwork.decrementCount(network) }
        }
        // Back-pressure: a peer that does not read its answers gets no more of them
        // (the request waits, reading stops, and the write-stall clock runs).
        if connection.pending.count >= configuration.limits.maxPendingOutputBytes {
            connection.deferred = request
            return
        }
        let context = RequestContext(transport: connection.transport, receivedNanos: now)
        if let response = handler.respondImmediately(to: request, context: context) {
            perform(connection.machine.completed(response, now: now), on: connection, now: now)
            return
        }
        let fd = connection.fd, generation = connection.generation
        let handler = self.handler
        let accepted = workers.submit { [self] in
            let response = handler.respond(to: request, context: context)
            completions.withLock { $0.append(Completion(fd: fd, generation: generation, response: response)) }
            waker.signal()
        }
        if !accepted {
            let busy = HTTPResponse.error(
                503, code: "busy", message: "all workers are busy; retry later",
                headers: [("Retry-After", "1")])
            perform(connection.machine.completed(busy, now: now), on: connection, now: now)
        }
    }

    private func drainCompletions(now: UInt64) {
        let ready = completions.withLock { queue -> [Completion] in
            defer { queue.removeAll(keepingCapacity: true) }
            return queue
        }
        for completion in ready {
            guard let connection = connections[completion.fd], connection.generation == completion.generation else {
                continue
            }
            perform(connection.machine.completed(completion.response, now: now), on: connection, now: now)
            guard connections[completion.fd] === connection else { continue }
            settle(connection)
        }
    }

    /// Whether to read from `connection` now: not while a request waits for its
    /// handler with the next one buffered, not while its peer leaves answers
    /// unread, and not while all connections together hold too much and this one holds some.
    private func shouldRead(_ connection: Connection) -> Bool {
        // A stream's peer sends nothing we keep: reading only notices it leaving.
        if connection.lingerUntil != nil || connection.stream != nil { return true }
        guard connection.machine.wantsInput, connection.deferred == nil,
            connection.pending.count < configuration.limits.maxPendingOutputBytes
        else { return false }
        return bufferedBytes < configuration.limits.maxBufferedBytes || connection.accountedBytes == 0
    }

    /// After anything changed a connection: its bytes in the process-wide total, and whether to read it.
    private func settle(_ connection: Connection) {
        let held = connection.machine.bufferedBytes + connection.pending.count
        bufferedBytes += held - connection.accountedBytes
        connection.accountedBytes = held
        bufferedGauge.store(bufferedBytes, ordering: .relaxed)
        if bufferedBytes > peakBufferedGauge.load(ordering: .relaxed) {
            peakBufferedGauge.store(bufferedBytes, ordering: .relaxed)
        }
        setReading(connection, shouldRead(connection))
    }

    private func send(_ response: HTTPResponse, close: Bool, omitBody: Bool, on connection: Connection, now: UInt64) {
        let head = HTTPResponseEncoder.head(response, close: close, date: dateCache.bytes(now: now))
        let body = omitBody ? [] : response.body
        connection.closeAfterFlush = close
        if connection.pending.isEmpty {
            let sent = head.withUnsafeBytes { h in
                body.withUnsafeBytes { b in
                    // Safety: both buffers stay alive for the duration of the call.
                    cnet_send2(connection.fd, h.baseAddress, h.count, b.baseAddress, b.count)
                }
            }
            if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                return finalClose(connection)
            }
            let written = max(sent, 0)
            if written < head.count + body.count {
                connection.pending.append(head + body, from: written)
                connection.outputProgressNanos = now
            }
        } else {
            connection.pending.append(head + body)
        }
        if connection.pending.isEmpty {
            if close { beginLinger(connection, now: now) }
        } else {
            watchOutput(connection, true)
        }
    }

    private func flush(_ connection: Connection, now: UInt64) {
        guard !connection.pending.isEmpty else { return watchOutput(connection, false) }
        let sent = connection.pending.withUnsentBytes { p in
            // Safety: the pending buffer stays alive for the call.
            cnet_send2(connection.fd, p.baseAddress, p.count, nil, 0)
        }
        if sent < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return }
            return finalClose(connection)
        }
        connection.pending.consume(sent)
        if sent > 0 { connection.outputProgressNanos = now }
        connection.stream?.loopHolds(connection.pending.count)
        if connection.pending.isEmpty {
            watchOutput(connection, false)
            if connection.closeAfterFlush { return beginLinger(connection, now: now) }
        }
        if let request = connection.deferred, connection.pending.count < configuration.limits.maxPendingOutputBytes {
            connection.deferred = nil
            dispatch(request, on: connection, now: now)
            guard connections[connection.fd] === connection else { return }
        }
        settle(connection)
    }

    private func beginLinger(_ connection: Connection, now: UInt64) {
        endStream(connection)
        shutdown(connection.fd, Int32(SHUT_WR))
        if connection.lingerUntil == nil { release(connection) }
        connection.lingerUntil = now + Self.lingerNanos
        settle(connection)
    }

    /// Gives up the connection's slot under the caps (once: at its linger or its close).
    private func release(_ connection: Connection) {
        if connection.isUnix {
            activeUnix -= 1
        } else if connection.inReserve {
            activeReserve -= 1
            if connection.awaitingCredential, let network = connection.network {
                awaitingPerNetwork.decrementCount(network)
            }
            connection.awaitingCredential = false
        } else {
            activeTCP -= 1
            if let network = connection.network { perPeer.decrementCount(network) }
        }
    }

    /// Why a reserve slot is refused or closed: it is held only by a request with a valid token.
    private static let reserveRefusal =
        "the agent's general connection slots are taken; the rest are for requests with a valid token"

    private func watchOutput(_ connection: Connection, _ on: Bool) {
        guard connection.watchingOutput != on else { return }
        connection.watchingOutput = on
        updateInterest(connection)
    }

    private func setReading(_ connection: Connection, _ on: Bool) {
        guard connection.readingPaused == on else { return }
        connection.readingPaused = !on
        updateInterest(connection)
    }

    private func updateInterest(_ connection: Connection) {
        var events: UInt32 = 0
        if !connection.readingPaused { events |= UInt32(CNET_IN | CNET_RDHUP) }
        if connection.watchingOutput { events |= UInt32(CNET_OUT) }
        cnet_epoll_ctl(epfd, 3, connection.fd, events, UInt64(connection.fd))
    }

    /// Forgets a connection: its slot, its bytes in the total, its stream. False when it was gone already.
    private func forget(_ connection: Connection) -> Bool {
        guard connections[connection.fd] === connection else { return false }
        connections[connection.fd] = nil
        endStream(connection)
        if connection.lingerUntil == nil { release(connection) }
        bufferedBytes -= connection.accountedBytes
        bufferedGauge.store(bufferedBytes, ordering: .relaxed)
        connectionCount.store(connections.count, ordering: .relaxed)
        return true
    }

    /// A connection whose descriptor `refuse` already closed.
    private func dropConnection(_ connection: Connection) {
        if forget(connection), acceptPaused { resumeAccepting() }
    }

    private func finalClose(_ connection: Connection) {
        guard forget(connection) else { return }
        close(connection.fd)  // also removes it from epoll
        if acceptPaused { resumeAccepting() }
    }

    // MARK: Streamed responses

    /// The head goes out like any response's; then the handler's stream feeds the connection.
    private func startStream(_ response: HTTPResponse, on connection: Connection, now: UInt64) {
        guard let body = response.stream else { return }
        send(response, close: false, omitBody: true, on: connection, now: now)
        guard connections[connection.fd] === connection else { return }
        let stream = HTTPStream(wake: { [waker] in waker.signal() })
        connection.stream = stream
        streaming[connection.fd] = connection
        settle(connection)
        body.open(stream)
    }

    /// Moves what streams were sent onto their sockets; closes the ones that finished.
    private func pumpStreams(now: UInt64) {
        for connection in Array(streaming.values) {
            guard let stream = connection.stream else { continue }
            let (bytes, finish) = stream.take()
            if !bytes.isEmpty { appendOutput(bytes, to: connection, now: now) }
            guard connections[connection.fd] === connection else { continue }
            stream.loopHolds(connection.pending.count)
            if finish {
                connection.closeAfterFlush = true
                if connection.pending.isEmpty { beginLinger(connection, now: now) }
            }
            guard connections[connection.fd] === connection else { continue }
            settle(connection)
        }
    }

    /// Writes what it can at once and keeps the rest, watching for the socket to take more.
    private func appendOutput(_ bytes: [UInt8], to connection: Connection, now: UInt64) {
        if connection.pending.isEmpty {
            let sent = bytes.withUnsafeBytes { b in
                // Safety: the buffer stays alive for the call.
                cnet_send2(connection.fd, b.baseAddress, b.count, nil, 0)
            }
            if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return finalClose(connection) }
            let written = max(sent, 0)
            if written < bytes.count {
                connection.pending.append(bytes, from: written)
                connection.outputProgressNanos = now
                watchOutput(connection, true)
            }
        } else {
            connection.pending.append(bytes)
        }
    }

    private func endStream(_ connection: Connection) {
        guard let stream = connection.stream else { return }
        connection.stream = nil
        streaming[connection.fd] = nil
        stream.markClosed()
    }

    private func pauseAccepting() {
        guard !acceptPaused else { return }
        acceptPaused = true
        for listener in listeners { cnet_epoll_ctl(epfd, 2, listener.fd, 0, 0) }
    }

    private func resumeAccepting() {
        acceptPaused = false
        for listener in listeners { cnet_epoll_ctl(epfd, 1, listener.fd, UInt32(CNET_IN), UInt64(listener.fd)) }
    }

    /// Deadlines: request and idle timeouts, stalled writes, lingering closes; reading
    /// resumes for connections that waited for the process-wide budget.
    private func sweep(now: UInt64) {
        let stall = configuration.limits.writeStallTimeoutNanos
        for connection in Array(connections.values) {
            if let until = connection.lingerUntil {
                if now >= until { finalClose(connection) }
                continue
            }
            if connection.awaitingCredential,
                now &- connection.acceptedNanos >= configuration.limits.reserveHeaderTimeoutNanos
            {
                // A reserve slot is held only by a request that shows a credential, and only briefly before it does;
                // the peer is told why, as at any refusal.
                refuse(connection.fd, code: "too_many_connections", Self.reserveRefusal)
                dropConnection(connection)
                continue
            }
            if !connection.pending.isEmpty, now &- connection.outputProgressNanos >= stall {
                logger.info(
                    "closing a connection whose peer stopped reading",
                    metadata: [
                        "peer": "\(connection.transport)", "unsent_bytes": "\(connection.pending.count)",
                    ])
                finalClose(connection)
                continue
            }
            if !connection.machine.isHandling {
                perform(connection.machine.tick(now: now), on: connection, now: now)
            }
            if connections[connection.fd] === connection, connection.readingPaused { settle(connection) }
        }
    }

    /// The eventfd that wakes the loop, signalled from any thread until the loop closes it.
    final class Waker: Sendable {
        private let fd: Mutex<Int32?>
        /// Signalled and not yet seen by the loop: later signals need no write (64 streams fed
        /// at once cost one eventfd write, not 64).
        private let raised = Atomic<Bool>(false)

        init(fd: Int32) {
            self.fd = Mutex(fd)
        }

        /// The loop has seen the signal: the next one writes the eventfd again.
        func lower() {
            raised.store(false, ordering: .sequentiallyConsistent)
        }

        func signal() {
            guard !raised.exchange(true, ordering: .sequentiallyConsistent) else { return }
            fd.withLock { fd in
                if let fd { cnet_eventfd_signal(fd) }
            }
        }

        func close() {
            fd.withLock { fd in
                if let open = fd { Glibc.close(open) }
                fd = nil
            }
        }
    }

    private static func peerName(_ fd: Int32) -> String {
        var name = [CChar](repeating: 0, count: 64)
        // Safety: the buffer's size is passed along; the result is NUL-terminated.
        guard cnet_peer_name(fd, &name, name.count) > 0 else { return "unknown" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
