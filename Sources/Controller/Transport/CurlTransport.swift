import CCurl
import Foundation

/// How `CurlTransport` reaches the fleet.
public struct TransportOptions: Sendable {
    /// Transfers in flight at once.
    public var concurrency = 64
    public var connectTimeoutMilliseconds = 3_000
    public var totalTimeoutMilliseconds = 15_000
    /// Extra attempts for idempotent requests after a transport failure or a 502/503/504.
    public var retries = 2
    /// The most one host may take, every attempt and back-off included, from its first attempt.
    public var hostDeadlineMilliseconds = 20_000
    public var retryBackoffMilliseconds = 200
    /// Sent as `Authorization: Bearer` (never to a Unix socket, which needs none).
    public var token: String?
    /// For https:// agents behind a TLS terminator.
    public var caFile: String?
    public var clientCertificate: String?
    public var clientKey: String?
    /// Largest response body accepted.
    public var maxResponseBytes = 64 << 20
    /// Called as transfers finish (done, total), for a progress line on a terminal.
    public var progress: (@Sendable (Int, Int) -> Void)?

    public init() {}
}

/// The fleet over libcurl's multi interface: up to `concurrency` transfers at once,
/// connections kept in the multi handle's cache and reused across batches.
/// One batch at a time (a lock serializes callers).
public final class CurlTransport: Transport, @unchecked Sendable {
    private let endpoints: [Endpoint]
    private let options: TransportOptions
    private let lock = NSLock()
    // Guarded by `lock`.
    private let multi: UnsafeMutableRawPointer

    private final class Transfer {
        let index: Int
        let request: HostRequest
        var attempt: Int
        let handle: UnsafeMutableRawPointer
        /// What this attempt may take (the per-attempt timeout, or less when the host's deadline is nearer).
        var timeoutMilliseconds = 0
        // Owned by the C shim (ccurl_buffer_new/free); Swift only passes them back to it.
        let body: UnsafeMutablePointer<ccurl_buffer>?
        let head: UnsafeMutablePointer<ccurl_buffer>?
        var headerList: UnsafeMutablePointer<curl_slist>?
        let started = Date()
        /// Largest header block accepted from an agent (under libcurl's own 300 KiB, so ours is the one met).
        static let maxHeaderBytes = 256 << 10

        init(index: Int, request: HostRequest, attempt: Int, handle: UnsafeMutableRawPointer, maxBody: Int) {
            self.index = index
            self.request = request
            self.attempt = attempt
            self.handle = handle
            body = ccurl_buffer_new(maxBody)
            head = ccurl_buffer_new(Self.maxHeaderBytes)
        }

        func release() {
            // Safety: called once per transfer, after its handle left the multi handle; each pointer is freed by its own allocator.
            curl_easy_cleanup(handle)
            curl_slist_free_all(headerList)
            ccurl_buffer_free(body)
            ccurl_buffer_free(head)
        }

        /// Copies out what libcurl wrote into a buffer.
        static func bytes(_ buffer: UnsafeMutablePointer<ccurl_buffer>?) -> [UInt8] {
            guard let buffer else { return [] }
            // Safety: the shim copies at most bytes.count bytes into the array it is handed.
            var bytes = [UInt8](repeating: 0, count: ccurl_buffer_length(buffer))
            let copied = ccurl_buffer_copy(buffer, &bytes, bytes.count)
            return Array(bytes.prefix(copied))
        }
    }

    /// The most idle connections kept for reuse.
    public static let maxCachedConnections = 1024
    /// Connections are kept between transfers (fleets up to `maxCachedConnections`).
    private let reuse: Bool

    private static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    public init(endpoints: [Endpoint], options: TransportOptions) throws(TransportError) {
        guard Self.initialized, let multi = curl_multi_init() else { throw .failed("libcurl could not be initialized") }
        self.endpoints = endpoints
        self.options = options
        self.multi = multi
        // A fleet up to `maxCachedConnections` keeps a connection to every host between one
        // command's phases (dry run, then write: no second handshake). A larger one could not
        // reuse them anyway (each phase walks every host before the next one starts), and
        // libcurl walks its connection cache for every transfer: it closes each after use.
        reuse = endpoints.count <= Self.maxCachedConnections
        ccurl_multi_setopt_long(
            multi, CURLMOPT_MAXCONNECTS, (reuse ? max(options.concurrency, endpoints.count) : options.concurrency) + 8)
    }

    deinit {
        // Safety: perform() removes every easy handle before it returns; nothing else holds the multi handle.
        curl_multi_cleanup(multi)
    }

    public func perform(_ requests: [HostRequest]) -> [Result<HostResponse, TransportError>] {
        perform(requests) { _, _ in nil }
    }

    public func perform(_ initial: [HostRequest], next: (Int, Result<HostResponse, TransportError>) -> HostRequest?)
        -> [Result<HostResponse, TransportError>]
    {
        lock.lock()
        defer { lock.unlock() }
        var requests = initial
        var results = [Result<HostResponse, TransportError>?](repeating: nil, count: requests.count)
        var waiting = Array(requests.enumerated().map { ($0.offset, 0) }.reversed())
        var delayed: [(at: Date, index: Int, attempt: Int)] = []
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        var finished = 0
        // When each request's first attempt started: its host's deadline counts from there.
        var firstStarted = [Date?](repeating: nil, count: requests.count)

        while !waiting.isEmpty || !delayed.isEmpty || !active.isEmpty {
            let now = Date()
            for retry in delayed where retry.at <= now { waiting.append((retry.index, retry.attempt)) }
            delayed.removeAll { $0.at <= now }
            while active.count < max(options.concurrency, 1), let (index, attempt) = waiting.popLast() {
                let request = requests[index]
                guard request.host >= 0, request.host < endpoints.count else {
                    results[index] = .failure(.failed("no host \(request.host)"))
                    continue
                }
                let first = firstStarted[index] ?? Date()
                firstStarted[index] = first
                var left = options.hostDeadlineMilliseconds - Int(Date().timeIntervalSince(first) * 1000)
                if let end = request.commandDeadline {
                    left = min(left, Int(end.timeIntervalSinceNow * 1000))
                    guard left > 0 else {
                        results[index] = .failure(
                            .timeout("the command's time ran out before this request could be made"))
                        finished += 1
                        continue
                    }
                }
                switch start(
                    request, index: index, attempt: attempt,
                    timeoutMilliseconds: max(1, min(options.totalTimeoutMilliseconds, left)))
                {
                case .success(let transfer): active[transfer.handle] = transfer
                case .failure(let error): results[index] = .failure(error)
                }
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard ccurl_message_is_done(message) != 0, let handle = ccurl_message_handle(message),
                    let transfer = active.removeValue(forKey: handle)
                else { continue }
                let outcome = finish(transfer, code: ccurl_message_result(message))
                curl_multi_remove_handle(multi, handle)
                transfer.release()
                let backoff = Double(options.retryBackoffMilliseconds) * pow(2, Double(transfer.attempt)) / 1000
                var deadline = (firstStarted[transfer.index] ?? Date()).addingTimeInterval(
                    Double(options.hostDeadlineMilliseconds) / 1000)
                if let end = transfer.request.commandDeadline { deadline = min(deadline, end) }
                // A retry that could not even start before the host's deadline is not made.
                if shouldRetry(transfer.request, outcome, attempt: transfer.attempt),
                    Date(timeIntervalSinceNow: backoff) < deadline
                {
                    delayed.append((Date(timeIntervalSinceNow: backoff), transfer.index, transfer.attempt + 1))
                } else if let following = next(transfer.index, outcome) {
                    // The host's next request goes out now, within what is left of its deadline.
                    requests[transfer.index] = following
                    waiting.append((transfer.index, 0))
                } else {
                    results[transfer.index] = outcome
                    finished += 1
                    if requests.count > 8 { options.progress?(finished, requests.count) }
                }
            }
            if !active.isEmpty {
                var ready: Int32 = 0
                curl_multi_poll(multi, nil, 0, 50, &ready)
            } else if waiting.isEmpty, let next = delayed.map(\.at).min() {
                Thread.sleep(until: next)
            }
        }
        return results.map { $0 ?? .failure(.failed("not attempted")) }
    }

    private func shouldRetry(_ request: HostRequest, _ outcome: Result<HostResponse, TransportError>, attempt: Int)
        -> Bool
    {
        guard request.isIdempotent, attempt < options.retries else { return false }
        switch outcome {
        case .success(let response): return [502, 503, 504].contains(response.status)
        case .failure(.tls): return false
        case .failure: return true
        }
    }

    private func start(_ request: HostRequest, index: Int, attempt: Int, timeoutMilliseconds: Int) -> Result<
        Transfer, TransportError
    > {
        guard let handle = curl_easy_init() else { return .failure(.failed("curl_easy_init failed")) }
        let transfer = Transfer(
            index: index, request: request, attempt: attempt, handle: handle, maxBody: options.maxResponseBytes)
        transfer.timeoutMilliseconds = timeoutMilliseconds
        guard transfer.body != nil, transfer.head != nil else {
            transfer.release()
            return .failure(.failed("out of memory for a response buffer"))
        }
        let endpoint = endpoints[request.host]
        if !reuse { ccurl_setopt_long(handle, CURLOPT_FORBID_REUSE, 1) }
        Self.connect(
            handle, to: endpoint, path: request.path, options: options,
            connectTimeoutMilliseconds: min(options.connectTimeoutMilliseconds, timeoutMilliseconds))
        ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        ccurl_collect_body(handle, transfer.body)
        ccurl_collect_headers(handle, transfer.head)

        var headers = request.headers
        if endpoint.unixSocket == nil, let token = options.token { headers["Authorization"] = "Bearer \(token)" }
        if request.body != nil, headers["Content-Type"] == nil { headers["Content-Type"] = "application/json" }
        headers["Expect"] = ""  // no 100-continue round trip
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            // Safety: curl copies the string; the list is freed in release(), after the transfer ends.
            transfer.headerList = curl_slist_append(transfer.headerList, "\(name): \(value)")
        }
        ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, transfer.headerList)
        switch request.method {
        case "GET": break
        case "HEAD": ccurl_setopt_long(handle, CURLOPT_NOBODY, 1)
        default: ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            ccurl_set_body(handle, body, body.count)  // libcurl copies the bytes during the call
            if request.method == "GET" { ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1) }
        }
        guard curl_multi_add_handle(multi, handle) == CURLM_OK else {
            transfer.release()
            return .failure(.failed("curl_multi_add_handle failed"))
        }
        return .success(transfer)
    }

    private func finish(_ transfer: Transfer, code: CURLcode) -> Result<HostResponse, TransportError> {
        let seconds = Date().timeIntervalSince(transfer.started)
        guard code == CURLE_OK else {
            // Our own caps abort a transfer through its write callback; libcurl then names a
            // generic write or memory error, so say which cap it was.
            if let body = transfer.body, ccurl_buffer_overflowed(body) != 0 {
                return .failure(
                    .failed(
                        "the answer was larger than \(options.maxResponseBytes >> 20) MiB, memgatectl's limit for one response"
                    ))
            }
            if let head = transfer.head, ccurl_buffer_overflowed(head) != 0 {
                return .failure(
                    .failed(
                        "the answer's headers were larger than \(Transfer.maxHeaderBytes >> 10) KiB, memgatectl's limit"
                    ))
            }
            let message = String(cString: curl_easy_strerror(code))
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SEND_ERROR,
                CURLE_RECV_ERROR, CURLE_GOT_NOTHING:
                return .failure(.unreachable(message))
            case CURLE_OUT_OF_MEMORY:
                // libcurl reports a header line over its own 100 KiB limit this way.
                return .failure(
                    .failed("the answer had a header line longer than libcurl's 100 KiB limit (or memory ran out)"))
            case CURLE_OPERATION_TIMEDOUT:
                let attempts = transfer.attempt + 1
                return .failure(
                    .timeout(
                        transfer.timeoutMilliseconds < options.totalTimeoutMilliseconds
                            ? "no answer within the host's \(Double(options.hostDeadlineMilliseconds) / 1000) s deadline (\(attempts) attempt\(attempts == 1 ? "" : "s"))"
                            : "no answer within \(Double(options.totalTimeoutMilliseconds) / 1000) s (attempt \(attempts))"
                    ))
            case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
                CURLE_SSL_CACERT_BADFILE:
                return .failure(.tls(message))
            default:
                return .failure(.failed(message))
            }
        }
        var status = 0
        ccurl_getinfo_long(transfer.handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(
            HostResponse(
                status: status, headers: Self.parseHeaders(Transfer.bytes(transfer.head)),
                body: Transfer.bytes(transfer.body), seconds: seconds))
    }

    /// Where and how an easy handle connects: URL, Unix socket, TLS files, no signals, no Nagle.
    static func connect(
        _ handle: UnsafeMutableRawPointer, to endpoint: Endpoint, path: String, options: TransportOptions,
        connectTimeoutMilliseconds: Int
    ) {
        ccurl_setopt_string(handle, CURLOPT_URL, endpoint.baseURL + path)
        ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMilliseconds)
        ccurl_setopt_long(handle, CURLOPT_TCP_NODELAY, 1)
        // An address needs no resolving, and libcurl walks its whole DNS cache on every
        // lookup: with 10,000 hosts that walk, not the network, was most of a command's time.
        if endpoint.isAddressLiteral { ccurl_setopt_long(handle, CURLOPT_DNS_CACHE_TIMEOUT, 0) }
        if let socket = endpoint.unixSocket { ccurl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, socket) }
        if let caFile = options.caFile { ccurl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
        if let certificate = options.clientCertificate { ccurl_setopt_string(handle, CURLOPT_SSLCERT, certificate) }
        if let key = options.clientKey { ccurl_setopt_string(handle, CURLOPT_SSLKEY, key) }
    }

    /// The last header block (after any 100 Continue), names lower-cased.
    static func parseHeaders(_ bytes: [UInt8]) -> [String: String] {
        var headers: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n") {
            if line.hasPrefix("HTTP/") {
                headers = [:]
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return headers
    }
}
