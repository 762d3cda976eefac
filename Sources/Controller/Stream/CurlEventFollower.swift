import APITypes
import CCurl
import Foundation
import Synchronization

/// `memgatectl events --follow`: one `GET /v1/events/stream` per host, all on one
/// libcurl multi handle, read as they arrive. A dropped connection is made again
/// with `Last-Event-ID` (after a back-off that grows while the host stays away), so
/// every host's events come once each and in order, whatever happens in between.
public final class CurlEventFollower: @unchecked Sendable {
    /// What the follower tells its caller, host by host.
    public enum Update: Sendable {
        case event(host: Int, SSEEvent)
        /// The host's stream is open (again).
        case connected(host: Int)
        /// The connection ended or failed; the follower tries again after `retryIn` seconds
        /// (nil: it gives up on this host, e.g. the token is refused).
        case disconnected(host: Int, reason: String, retryIn: Double?)
    }

    private final class Connection {
        let host: Int
        let handle: UnsafeMutableRawPointer
        // Owned by the C shim (ccurl_buffer_new/free); Swift only passes it back to it.
        let body: UnsafeMutablePointer<ccurl_buffer>?
        var headerList: UnsafeMutablePointer<curl_slist>?
        var parser: SSEParser
        var announced = false

        init(host: Int, handle: UnsafeMutableRawPointer, lastEventID: Int64?) {
            self.host = host
            self.handle = handle
            body = ccurl_buffer_new(0)
            parser = SSEParser(lastEventID: lastEventID)
        }

        func release() {
            // Safety: called once per connection, after its handle left the multi handle; each pointer is freed by its own allocator.
            curl_easy_cleanup(handle)
            curl_slist_free_all(headerList)
            ccurl_buffer_free(body)
        }

        /// What arrived since the last look.
        func take() -> [UInt8] {
            guard let body else { return [] }
            // Safety: the shim copies at most bytes.count bytes into the array it is handed.
            var bytes = [UInt8](repeating: 0, count: ccurl_buffer_length(body))
            let copied = ccurl_buffer_copy(body, &bytes, bytes.count)
            ccurl_buffer_clear(body)
            return Array(bytes.prefix(copied))
        }
    }

    private let endpoints: [Endpoint]
    private let options: TransportOptions
    private let path: String
    /// Seconds without a byte (not even a heartbeat) after which a connection counts as dead.
    private let silenceSeconds: Int
    private let stopping = Atomic<Bool>(false)
    private let multi: UnsafeMutableRawPointer

    /// - Parameters:
    ///   - path: the stream's path and query (`/v1/events/stream?kind=conversion`).
    ///   - silenceSeconds: three heartbeats (the agent sends one every 15 s) by default.
    public init(
        endpoints: [Endpoint], options: TransportOptions, path: String = APIRoute.eventStream.path(),
        silenceSeconds: Int = 45
    ) throws(TransportError) {
        guard curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK, let multi = curl_multi_init() else {
            throw .failed("libcurl could not be initialized")
        }
        self.endpoints = endpoints
        self.options = options
        self.path = path
        self.silenceSeconds = silenceSeconds
        self.multi = multi
    }

    deinit {
        // Safety: follow() removed every easy handle before it returned; nothing else holds the multi handle.
        curl_multi_cleanup(multi)
    }

    /// Ends `follow` soon (from any thread, a signal handler's thread included).
    public func stop() {
        stopping.store(true, ordering: .releasing)
        curl_multi_wakeup(multi)
    }

    /// Follows every host from `startAfter[host]` (nil: from now) until `stop()`.
    /// Returns each host's last event id. `update` runs on this thread.
    public func follow(startAfter: [Int64?], update: (Update) throws -> Void) rethrows -> [Int64?] {
        var state = FollowState(
            lastIDs: startAfter, due: endpoints.indices.map { (Date.distantPast, $0) },
            failures: [Int](repeating: 0, count: endpoints.count))
        defer {
            for connection in state.active.values {
                curl_multi_remove_handle(multi, connection.handle)
                connection.release()
            }
        }
        while !stopping.load(ordering: .acquiring) {
            openDue(&state)
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            try readActive(&state, update: update)
            try finishDone(&state, update: update)
            if state.active.isEmpty && state.due.isEmpty { break }
            let wait = state.due.map { $0.at.timeIntervalSinceNow }.min().map { max(0, min($0, 1)) } ?? 1
            var descriptors: Int32 = 0
            curl_multi_poll(multi, nil, 0, Int32(wait * 1000), &descriptors)
        }
        return state.lastIDs
    }

    /// What `follow` keeps between turns: each host's last event id, its open connection,
    /// when each closed host is next tried, and how many times in a row each failed.
    private struct FollowState {
        var lastIDs: [Int64?]
        var active: [UnsafeMutableRawPointer: Connection] = [:]
        var due: [(at: Date, host: Int)]
        var failures: [Int]
    }

    /// Opens a stream to every host whose retry time has come (one that cannot be opened is tried again in a second).
    private func openDue(_ state: inout FollowState) {
        let now = Date()
        let ready = state.due.filter { $0.at <= now }
        state.due.removeAll { $0.at <= now }
        for entry in ready {
            if let connection = open(entry.host, lastEventID: state.lastIDs[entry.host]) {
                state.active[connection.handle] = connection
            } else {
                state.due.append((Date(timeIntervalSinceNow: 1), entry.host))
            }
        }
    }

    /// Hands on the events each open stream has brought; a stream that cannot be read is given up.
    private func readActive(_ state: inout FollowState, update: (Update) throws -> Void) rethrows {
        var unreadable: [(Connection, SSEParserError)] = []
        for connection in state.active.values {
            var status = 0
            ccurl_getinfo_long(connection.handle, CURLINFO_RESPONSE_CODE, &status)
            if status == 200 && !connection.announced {
                connection.announced = true
                try update(.connected(host: connection.host))
            }
            let bytes = connection.take()
            guard status == 200, !bytes.isEmpty else { continue }
            var events: [SSEEvent] = []
            do throws(SSEParserError) {
                events = try connection.parser.feed(bytes)
            } catch {
                unreadable.append((connection, error))
            }
            for event in events {
                state.failures[connection.host] = 0
                try update(.event(host: connection.host, event))
            }
            state.lastIDs[connection.host] = connection.parser.lastEventID ?? state.lastIDs[connection.host]
        }
        // Resuming would send the same event again: the host is given up, and says why.
        for (connection, error) in unreadable {
            state.active.removeValue(forKey: connection.handle)
            curl_multi_remove_handle(multi, connection.handle)
            connection.release()
            try update(.disconnected(host: connection.host, reason: error.description, retryIn: nil))
        }
    }

    /// Closes the streams that ended: their last events are handed on, and each host is
    /// tried again after a backoff, unless its answer will not change by retrying.
    private func finishDone(_ state: inout FollowState, update: (Update) throws -> Void) rethrows {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard ccurl_message_is_done(message) != 0, let handle = ccurl_message_handle(message),
                let connection = state.active.removeValue(forKey: handle)
            else { continue }
            var status = 0
            ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            // The last bytes of a stream that ended (an overflow notice, say) are events too.
            // An unfinished event past the limit is dropped like any unfinished event at the end.
            if status == 200 {
                let events = (try? connection.parser.feed(connection.take())) ?? []
                for event in events { try update(.event(host: connection.host, event)) }
                state.lastIDs[connection.host] = connection.parser.lastEventID ?? state.lastIDs[connection.host]
            }
            let code = ccurl_message_result(message)
            let answer = status == 200 ? "" : String(decoding: connection.take().prefix(300), as: UTF8.self)
            curl_multi_remove_handle(multi, handle)
            connection.release()
            let reason =
                status == 200 || status == 0
                ? (code == CURLE_OK ? "the stream ended" : String(cString: curl_easy_strerror(code)))
                : "HTTP \(status) \(answer)"
            // A refused token or an agent without the stream will not change by retrying.
            if [401, 403, 404].contains(status) {
                try update(.disconnected(host: connection.host, reason: reason, retryIn: nil))
                continue
            }
            state.failures[connection.host] += 1
            let delay = min(0.2 * pow(2, Double(state.failures[connection.host] - 1)), 10)
            state.due.append((Date(timeIntervalSinceNow: delay), connection.host))
            try update(.disconnected(host: connection.host, reason: reason, retryIn: delay))
        }
    }

    private func open(_ host: Int, lastEventID: Int64?) -> Connection? {
        guard let handle = curl_easy_init() else { return nil }
        let connection = Connection(host: host, handle: handle, lastEventID: lastEventID)
        let endpoint = endpoints[host]
        CurlTransport.connect(
            handle, to: endpoint, path: path, options: options,
            connectTimeoutMilliseconds: options.connectTimeoutMilliseconds)
        // No overall timeout: a stream lasts. Silence longer than three heartbeats is a dead connection.
        ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, silenceSeconds)
        ccurl_collect_body(handle, connection.body)
        var headers = ["Accept: text/event-stream"]
        if endpoint.unixSocket == nil, let token = options.token { headers.append("Authorization: Bearer \(token)") }
        // Where to resume; a first connection without one starts from the agent's present.
        if let lastEventID { headers.append("Last-Event-ID: \(lastEventID)") }
        // Safety: curl copies each string; the list is freed in release(), after the connection ends.
        for header in headers { connection.headerList = curl_slist_append(connection.headerList, header) }
        ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, connection.headerList)
        guard curl_multi_add_handle(multi, handle) == CURLM_OK else {
            connection.release()
            return nil
        }
        return connection
    }
}
