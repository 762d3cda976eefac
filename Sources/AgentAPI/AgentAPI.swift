import APITypes
import AgentHost
import EventStore
import Foundation
import HTTPServer
import JSON
import Logging
import MemoryModel
import Pictures
import Platform
import Synchronization

/// API v1: every request becomes an `AgentAction` at the edge, is authorized,
/// runs against the AgentHost or the store's readers, and every failure is
/// turned into a response in one place (`APIError.response`).
public final class AgentAPI: HTTPHandler {
    public struct Configuration: Sendable {
        public var tokens: TokenStore
        public var images: ImageDirectory?
        /// How long a status-page session lasts.
        public var sessionLifetimeNanos: UInt64 = 12 * 3600 * 1_000_000_000
        /// Mark the session cookie `Secure` (the agent is reached through TLS).
        public var secureCookie = false
        /// Limits of `GET /v1/events/stream`.
        public var streams = EventStreamHub.Limits()
        /// The network a peer address counts under for the credential throttles (as for the per-peer cap).
        public var peerPrefix = AddressPrefix()
        public init(tokens: TokenStore, images: ImageDirectory?) {
            self.tokens = tokens
            self.images = images
        }
    }

    let host: AgentHost
    let queries: EventQueries?
    let snapshot: HostSnapshot
    let configuration: Configuration
    /// The token file as last read (SIGHUP reads it again, see `reloadTokens`).
    private let tokenStore: Mutex<TokenStore>
    let sessions: Mutex<SessionStore>
    /// Wrong status-page sign-ins and wrong bearer tokens, each by network (see `CredentialThrottle`).
    let signInThrottle: Mutex<CredentialThrottle>
    let bearerThrottle: Mutex<CredentialThrottle>
    public let metrics = APIMetrics()
    /// Refused requests, counted a second at a time (see `RefusalLedger`).
    private let refusals = Mutex(RefusalLedger())
    /// The first answer to each Idempotency-Key (see `IdempotencyLedger`), restored from the store.
    let idempotency: Mutex<IdempotencyLedger>
    let logger: Logger
    /// Where the server answers, once it is bound (`announce(endpoints:)`): the status page names them.
    let endpoints = Mutex<[String]>([])
    /// The event stream (nil with --no-record: there are no durable events to stream).
    public let streams: EventStreamHub?
    static let healthBody = Array(#"{"status":"ok"}"#.utf8) + [0x0A]

    public init(
        host: AgentHost, queries: EventQueries?, snapshot: HostSnapshot, configuration: Configuration, logger: Logger
    ) {
        self.host = host
        self.queries = queries
        self.snapshot = snapshot
        self.configuration = configuration
        let now = MonotonicClock.wallNanos()
        let kept =
            (try? queries?.idempotentAnswers(
                since: now > IdempotencyLedger.lifetimeNanos ? now - IdempotencyLedger.lifetimeNanos : 0,
                limit: IdempotencyLedger.capacity)) ?? []
        idempotency = Mutex(
            IdempotencyLedger(
                kept.map {
                    IdempotencyLedger.Stored(
                        principal: $0.principal, key: $0.key, fingerprint: $0.fingerprint,
                        answer: .init(status: $0.status, headers: $0.headers, body: $0.body),
                        createdNanos: $0.createdNanos)
                }))
        tokenStore = Mutex(configuration.tokens)
        sessions = Mutex(SessionStore(lifetimeNanos: configuration.sessionLifetimeNanos))
        signInThrottle = Mutex(CredentialThrottle(prefix: configuration.peerPrefix))
        bearerThrottle = Mutex(CredentialThrottle(prefix: configuration.peerPrefix))
        self.logger = logger
        streams = queries.map { EventStreamHub(source: $0, limits: configuration.streams, logger: logger) }
        if let streams { host.store?.onCommit { [weak streams] in streams?.signal() } }
    }

    /// Ends every stream (before the server stops, so readers get a clean end of stream).
    public func stopStreams() {
        streams?.stop()
    }

    var tokens: TokenStore { tokenStore.withLock { $0 } }

    /// Takes a re-read token file: removed tokens stop working at once, and so do the
    /// browser sessions signed in with them.
    public func reloadTokens(_ tokens: TokenStore) {
        tokenStore.withLock { $0 = tokens }
        sessions.withLock { $0.keepOnly(tokens) }
    }

    // MARK: HTTPHandler

    public func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse? {
        if request.path == "/healthz", request.method == .GET || request.method == .HEAD {
            let response = HTTPResponse(status: 200, contentType: "application/json", body: Self.healthBody)
            metrics.observe(
                route: .healthz, method: request.method, status: 200, nanos: Self.now() &- context.receivedNanos)
            return response
        }
        // Reading the policy takes no lock that is held for long, does no I/O and costs the same
        // whatever the request holds: answered on the event loop, it skips two thread hand-offs.
        // Anything whose cost grows with the body (a policy dry run included) goes to the workers.
        let inline = request.method == .GET && request.path == APIRoute.policy.rawValue
        return inline ? respond(to: request, context: context) : nil
    }

    public func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        let routed = APIRouter.route(of: request.path)
        let route = routed.0
        var principal: Principal?
        var action: AgentAction?
        var refusal: RefusalCount.Kind?
        /// Authenticated, routed, parsed, authorized and mutating: the only requests that get an api_requests row.
        var admitted = false
        let response: HTTPResponse
        do throws(APIError) {
            do {
                principal = try authenticate(request, route: route, context: context)
            } catch {
                refusal = error.status == 429 ? .throttled : .unauthenticated
                throw error
            }
            let parsed = try APIRouter.parse(request, routed: routed)
            action = parsed
            if parsed.isMutating, principal?.viaSession == true {
                refusal = .forbidden
                throw APIError(
                    403, "forbidden",
                    "a browser session may only read; \(request.method.rawValue) \(route.rawValue) needs Authorization: Bearer with an admin token"
                )
            }
            if parsed.isMutating, principal?.role == .readOnly {
                refusal = .forbidden
                throw APIError(
                    403, "forbidden",
                    "token \(principal?.name ?? "") is read-only; \(request.method.rawValue) \(route.rawValue) needs an admin token"
                )
            }
            admitted = parsed.isMutating
            response = try performOnce(parsed, request: request, principal: principal, context: context)
            if case .login(.some) = parsed, response.status == 401 { refusal = .signInFailed }
            if case .login(.some) = parsed, response.status == 429 { refusal = .throttled }
        } catch {
            response = error.response
            // A write that named no endpoint or method, or whose body or query did not parse, was never
            // admitted: it is counted, not written, so nobody can fill the disk with them.
            if refusal == nil, action == nil, request.method.isWrite { refusal = .invalidWrite }
        }
        let elapsed = Self.now() &- context.receivedNanos
        metrics.observe(route: route, method: request.method, status: response.status, nanos: elapsed)
        let wall = MonotonicClock.wallNanos()
        let second = wall / 1_000_000_000
        // Every answered request writes the refusal counts of seconds that have passed.
        let closedSeconds: [RefusalCount]
        if let refusal {
            // Refusals are counted, not written one row each: nobody without a token can fill the disk.
            metrics.refused(refusal)
            closedSeconds = refusals.withLock {
                $0.note(peer: context.transport.peerAddress, kind: refusal, second: second)
            }
        } else {
            if admitted {
                // An admitted request that changes something keeps its row, durably, whatever its outcome.
                host.store?.recordAPIRequest(
                    method: request.method.rawValue, path: String(request.path), status: response.status,
                    durationNanos: elapsed, client: Self.client(principal, context), atNanos: wall)
            }
            closedSeconds = refusals.withLock { $0.drain(before: second) }
        }
        host.store?.recordRefusals(closedSeconds)
        return response
    }

    /// A connection in the server's token-only reserve keeps its slot only with a credential this agent accepts.
    public func presentsValidCredential(_ request: HTTPRequest) -> Bool {
        if let header = request.header("Authorization") { return tokens.authenticate(header) != nil }
        return sessionPrincipal(request) != nil
    }

    /// Writes every refusal counted so far (the agent calls it before closing the store).
    public func flushAudit() {
        host.store?.recordRefusals(refusals.withLock { $0.drain() })
    }

    static func client(_ principal: Principal?, _ context: RequestContext) -> String {
        if let principal { return principal.name }
        switch context.transport {
        case .tcp(let peer): return "anonymous@\(peer)"
        case .unix(let uid): return "unix uid \(uid.map(String.init) ?? "unknown")"
        }
    }

    static func now() -> UInt64 { MonotonicClock.nanos() }

    /// The current time as people read it on a picture or a page, in UTC.
    static func utcNow() -> String { utcSeconds(MonotonicClock.wallNanos()) }

    /// TCP requests under /v1 need a bearer token; the Unix socket is trusted (its mode is 0600).
    private func authenticate(_ request: HTTPRequest, route: APIRoute, context: RequestContext) throws(APIError)
        -> Principal?
    {
        switch context.transport {
        case .unix(let uid):
            return Principal(name: "unix uid \(uid.map(String.init) ?? "unknown")", role: .admin)
        case .tcp:
            guard route.isVersioned else { return nil }
            let challenge = ["WWW-Authenticate": "Bearer realm=\"memgate\""]
            guard let header = request.header("Authorization") else {
                if let session = sessionPrincipal(request) { return session }
                throw APIError(401, "unauthorized", "send Authorization: Bearer <token>", headers: challenge)
            }
            let peer = context.transport.peerAddress
            let now = Self.now()
            if case .refuse(let wait) = bearerThrottle.withLock({ $0.verdict(address: peer, nowNanos: now) }) {
                throw APIError(
                    429, "too_many_failures", "too many wrong tokens from \(peer); try again in \(wait) s",
                    headers: ["Retry-After": "\(wait)"])
            }
            guard let principal = tokens.authenticate(header) else {
                bearerThrottle.withLock { $0.failed(address: peer, nowNanos: now) }
                throw APIError(401, "unauthorized", "the token is not valid for this agent", headers: challenge)
            }
            return principal
        }
    }

}
