import JSON
import AgentHost
import APITypes
import EventStore
import Foundation
import HTTPServer
import Logging
import MemoryModel
import Pictures
import Platform
import Synchronization
import VMM

/// API v1: every request becomes an `AgentAction` at the edge, is authorized,
/// runs against the AgentHost or the store's readers, and every failure is
/// turned into a response in one place (`APIError.response`).
public final class AgentAPI: HTTPHandler {
    public struct Configuration: Sendable {
        public var tokens: TokenStore
        public var images: ImageDirectory?
        public init(tokens: TokenStore, images: ImageDirectory?) {
            self.tokens = tokens
            self.images = images
        }
    }

    let host: AgentHost
    let queries: EventQueries?
    let snapshot: HostSnapshot
    let configuration: Configuration
    public let metrics = APIMetrics()
    /// Refused requests, counted a second at a time (see `RefusalLedger`).
    private let refusals = Mutex(RefusalLedger())
    let logger: Logger
    private static let healthBody = Array(#"{"status":"ok"}"#.utf8) + [0x0A]

    public init(host: AgentHost, queries: EventQueries?, snapshot: HostSnapshot, configuration: Configuration, logger: Logger) {
        self.host = host
        self.queries = queries
        self.snapshot = snapshot
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: HTTPHandler

    public func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse? {
        if request.path == "/healthz", request.method == .GET || request.method == .HEAD {
            let response = HTTPResponse(status: 200, contentType: "application/json", body: Self.healthBody)
            metrics.observe(route: .healthz, method: request.method, status: 200, nanos: Self.now() &- context.receivedNanos)
            return response
        }
        // Reading the policy takes no lock that is held for long, does no I/O and costs the same
        // whatever the request holds: answered on the event loop, it skips two thread hand-offs.
        // Anything whose cost grows with the body (a policy dry run included) goes to the workers.
        let inline = request.method == .GET && request.path == Route.policy.rawValue
        return inline ? respond(to: request, context: context) : nil
    }

    public func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        let routed = APIRouter.route(of: request.path)
        let route = routed.0
        var principal: Principal?
        var action: AgentAction?
        var refusal: RefusalCount.Kind?
        let response: HTTPResponse
        do throws(APIError) {
            do {
                principal = try authenticate(request, route: route, context: context)
            } catch {
                refusal = .unauthenticated
                throw error
            }
            let parsed = try APIRouter.parse(request, routed: routed)
            action = parsed
            if parsed.isMutating, principal?.role == .readOnly {
                refusal = .forbidden
                throw APIError(403, "forbidden", "token \(principal?.name ?? "") is read-only; \(request.method.rawValue) \(route.rawValue) needs an admin token")
            }
            response = try perform(parsed, request: request, principal: principal, context: context)
            if case .login(.some) = parsed, response.status == 401 { refusal = .signInFailed }
        } catch {
            response = error.response
        }
        let elapsed = Self.now() &- context.receivedNanos
        metrics.observe(route: route, method: request.method, status: response.status, nanos: elapsed)
        let wall = MonotonicClock.wallNanos()
        if let refusal {
            // Refusals are counted, not written one row each: nobody without a token can fill the disk.
            metrics.refused(refusal)
            let closed = refusals.withLock { $0.note(peer: context.transport.peerAddress, kind: refusal, second: wall / 1_000_000_000) }
            host.store?.recordRefusals(closed)
        } else if action?.isMutating ?? [HTTPMethod.POST, .PUT, .DELETE, .PATCH].contains(request.method) {
            // An admitted request that changes something (or tried to, with a valid token) keeps its row, durably.
            host.store?.recordAPIRequest(method: request.method.rawValue, path: String(request.path), status: response.status,
                                         durationNanos: elapsed, client: Self.client(principal, context), atNanos: wall)
            flushRefusals(atNanos: wall)
        } else {
            flushRefusals(atNanos: wall)
        }
        return response
    }

    /// Writes refusal counts of seconds that have passed (every answered request looks).
    private func flushRefusals(atNanos wall: UInt64) {
        let closed = refusals.withLock { $0.drain(before: wall / 1_000_000_000) }
        host.store?.recordRefusals(closed)
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
    private func authenticate(_ request: HTTPRequest, route: Route, context: RequestContext) throws(APIError) -> Principal? {
        switch context.transport {
        case .unix(let uid):
            return Principal(name: "unix uid \(uid.map(String.init) ?? "unknown")", role: .admin)
        case .tcp:
            guard route.isVersioned else { return nil }
            let challenge = ["WWW-Authenticate": "Bearer realm=\"memgate\""]
            guard let header = request.header("Authorization") else {
                throw APIError(401, "unauthorized", "send Authorization: Bearer <token>", headers: challenge)
            }
            guard let principal = configuration.tokens.authenticate(header) else {
                throw APIError(401, "unauthorized", "the token is not valid for this agent", headers: challenge)
            }
            return principal
        }
    }

    // MARK: Actions

    private func perform(_ action: AgentAction, request: HTTPRequest, principal: Principal?,
                         context: RequestContext) throws(APIError) -> HTTPResponse {
        switch action {
        case .health:
            return HTTPResponse(status: 200, contentType: "application/json", body: Self.healthBody)
        case .metrics:
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4", body: Array(renderMetrics().utf8))
        case .host:
            return try json(snapshot.info(vms: vmCounts(), policyVersion: host.policies.policy.version))
        case .listVMs:
            return try json(VMList(vms: host.vms.map(VMView.info)))
        case .createVM(let body):
            let vm = try createVM(body)
            return try json(VMView.info(vm), status: 201, headers: [("Location", "/v1/vms/\(vm.id)")])
        case .getVM(let id):
            return try json(VMView.info(try existing(id)))
        case .startVM(let id):
            try hostCall { () throws(AgentHostError) in try host.start(id) }
            return try json(VMView.info(try existing(id)))
        case .pauseVM(let id):
            try hostCall { () throws(AgentHostError) in try host.pause(id) }
            return try json(VMView.info(try existing(id)))
        case .resumeVM(let id):
            try hostCall { () throws(AgentHostError) in try host.resume(id) }
            return try json(VMView.info(try existing(id)))
        case .stopVM(let id):
            try hostCall { () throws(AgentHostError) in try host.stop(id, reason: "stopped through the API by \(Self.client(principal, context))") }
            return try json(VMView.info(try existing(id)))
        case .deleteVM(let id):
            try hostCall { () throws(AgentHostError) in try host.delete(id) }
            return HTTPResponse(status: 204)
        case .console(let id, let after):
            let vm = try existing(id)
            let chunk = vm.machine.console(from: after)
            return try json(ConsoleChunk(vmId: id, offset: chunk.start, nextOffset: chunk.start + chunk.bytes.count,
                                         droppedBytes: chunk.dropped, data: String(decoding: chunk.bytes, as: UTF8.self)))
        case .memory(let id):
            return try json(VMView.memory(try existing(id)))
        case .memorySVG(let id, let from, let to):
            let vm = try existing(id)
            let svg = MemoryMapSVG().render(VMView.memory(vm), name: vm.name, drawnAt: Self.utcNow(), from: from, to: to)
            return HTTPResponse(status: 200, contentType: "image/svg+xml", body: Array(svg.utf8))
        case .faults(let filter):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.faultPageJSON(filter) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page.json)
        case .conversions(let filter):
            let page = try read { (queries: EventQueries) throws(EventStoreError) in try queries.conversionPageJSON(filter) }
            return HTTPResponse(status: 200, contentType: "application/json", body: page.json)
        case .events(let after, let limit):
            let rows = try read { (queries: EventQueries) throws(EventStoreError) in try queries.events(after: after, limit: limit) }
            return try json(EventPage(events: rows, nextAfter: rows.last?.eventId ?? after))
        case .getPolicy:
            let current = host.policies.policy
            return HTTPResponse(status: 200, contentType: "application/json", body: current.document,
                                headers: [("ETag", ETag.quoted(current.version))])
        case .putPolicy(let document, let ifMatch):
            return try putPolicy(document, ifMatch: ifMatch, by: Self.client(principal, context))
        case .validatePolicy(let document):
            return try json(validate(document))
        case .policyHistory(let limit):
            let rows = try read { (queries: EventQueries) throws(EventStoreError) in try queries.policyHistory(limit: limit) }
            return try json(PolicyHistory(entries: rows))
        case .statusPage:
            return statusPage(request, context: context)
        case .login(let token):
            return login(token: token)
        }
    }

    private func existing(_ id: Int64) throws(APIError) -> ManagedVM {
        guard let vm = host.vm(id) else { throw .notFound("no VM with id \(id) on this agent") }
        return vm
    }

    private func createVM(_ body: VMCreateRequest) throws(APIError) -> ManagedVM {
        guard let images = configuration.images else {
            throw APIError(409, "no_images_dir", "this agent was started without --images-dir; it cannot launch images")
        }
        var spec = VMSpec(name: body.name, imageName: body.image, image: [])
        spec.memoryMib = body.memoryMib ?? 64
        spec.vcpus = body.vcpus ?? 1
        spec.commandLine = body.commandLine ?? ""
        spec.labels = body.labels ?? [:]
        if let backend = body.backend {
            guard let kind = BackendKind(rawValue: backend) else { throw .invalidField("backend", "must be alias or attributes") }
            spec.backend = kind
        }
        if let initial = body.initialState {
            guard let state = PageState(rawValue: initial) else { throw .invalidField("initial_state", "must be private or shared") }
            spec.initialState = state
        }
        guard spec.commandLine.utf8.count <= 200 else {
            throw .invalidField("command_line", "must be at most 200 bytes")
        }
        do {
            try spec.validate()
        } catch {
            throw Self.map(error)
        }
        spec.image = try images.load(body.image)
        var created: ManagedVM?
        try hostCall { () throws(AgentHostError) in created = try host.create(spec, start: body.start ?? true) }
        guard let created else { throw APIError(500, "internal", "VM creation returned nothing") }
        return created
    }

    private func putPolicy(_ document: [UInt8], ifMatch: String, by client: String) throws(APIError) -> HTTPResponse {
        let policy: VersionedPolicy
        do {
            policy = try VersionedPolicy(document: document)
        } catch {
            throw .invalidField(error.field, error.message)
        }
        let expected = ETag.version(ifMatch)
        let changed: Bool
        do throws(AgentHost.PolicyReplaceError) {
            changed = try host.replacePolicy(policy, expected: expected == "*" ? nil : expected, appliedBy: "api: \(client)")
        } catch {
            switch error {
            case .versionMismatch(let current):
                throw APIError(412, "precondition_failed", "the policy in force is \(current), not \(expected); GET it again and retry",
                               headers: ["ETag": ETag.quoted(current)])
            case .store(let message):
                throw APIError(503, "store_unavailable", "the policy was not applied: \(message)")
            }
        }
        return try json(PolicyApplied(version: policy.version, changed: changed), headers: [("ETag", ETag.quoted(policy.version))])
    }

    private func validate(_ document: [UInt8]) -> PolicyValidation {
        let current = host.policies.policy.version
        do {
            let policy = try VersionedPolicy(document: document)
            return PolicyValidation(valid: true, version: policy.version, changed: policy.version != current, currentVersion: current)
        } catch {
            return PolicyValidation(valid: false, version: nil, changed: false, currentVersion: current,
                                    field: error.field, message: error.message)
        }
    }

    func vmCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for vm in host.vms { counts[vm.lifecycle.state.rawValue, default: 0] += 1 }
        return counts
    }

    // MARK: Helpers

    private func read<T>(_ body: (EventQueries) throws(EventStoreError) -> T) throws(APIError) -> T {
        guard let queries else {
            throw APIError(409, "not_recording", "this agent runs with --no-record; there are no stored events")
        }
        do {
            return try body(queries)
        } catch {
            logger.error("store query failed", metadata: ["error": "\(error)"])
            throw APIError(503, "store_unavailable", "\(error)")
        }
    }

    private func hostCall(_ body: () throws(AgentHostError) -> Void) throws(APIError) {
        do { try body() } catch { throw Self.map(error) }
    }

    /// AgentHost errors as API errors: the one mapping.
    static func map(_ error: AgentHostError) -> APIError {
        switch error {
        case .invalid(let field, let message): .invalidField(field, message)
        case .badImage(let message): .invalidField("image", message)
        case .creationFailed(let message): APIError(422, "vm_creation_failed", message)
        case .notFound(let id): .notFound("no VM with id \(id) on this agent")
        case .conflict(let message): APIError(409, "conflict", message)
        case .store(let error): APIError(503, "store_unavailable", error.description)
        case .shuttingDown: APIError(503, "shutting_down", error.description)
        case .tooManyVMs: APIError(409, "too_many_vms", error.description)
        }
    }

    /// Pages of events, the hot path: written directly, not through JSONEncoder.
    private func json<T: Encodable & JSONWritable>(_ value: T, status: Int = 200,
                                                   headers: [(name: String, value: String)] = []) throws(APIError) -> HTTPResponse {
        var writer = JSONWriter(capacity: 4096)
        value.write(to: &writer)
        return HTTPResponse(status: status, contentType: "application/json", body: writer.bytes + [0x0A], headers: headers)
    }

    private func json<T: Encodable>(_ value: T, status: Int = 200, headers: [(name: String, value: String)] = []) throws(APIError) -> HTTPResponse {
        do {
            var body = try APIJSON.encoder().encode(value)
            body.append(0x0A)
            return HTTPResponse(status: status, contentType: "application/json", body: body, headers: headers)
        } catch {
            throw APIError(500, "internal", "cannot encode the response: \(error)")
        }
    }
}
