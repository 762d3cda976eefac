/// Every path the agent answers, stated once: the agent's router matches requests
/// against these templates, the controller builds its URLs from them, and a test holds
/// `openapi.yaml` (the public contract) to the same list. A template has at most one
/// parameter segment (`{id}`, `{version}`).
public enum APIRoute: String, Sendable, CaseIterable {
    case statusPage = "/"
    case login = "/login"
    case logout = "/logout"
    case healthz = "/healthz"
    case metrics = "/metrics"
    case host = "/v1/host"
    case vms = "/v1/vms"
    case vm = "/v1/vms/{id}"
    case vmStart = "/v1/vms/{id}/start"
    case vmPause = "/v1/vms/{id}/pause"
    case vmResume = "/v1/vms/{id}/resume"
    case vmStop = "/v1/vms/{id}/stop"
    case console = "/v1/vms/{id}/console"
    case memory = "/v1/vms/{id}/memory"
    case memorySVG = "/v1/vms/{id}/memory.svg"
    case historySVG = "/v1/vms/{id}/history.svg"
    case faults = "/v1/memory-faults"
    case conversions = "/v1/conversions"
    case events = "/v1/events"
    case eventStream = "/v1/events/stream"
    case policy = "/v1/policy"
    case policyValidate = "/v1/policy/validate"
    case policyReplay = "/v1/policy/replay"
    case policyHistory = "/v1/policy/history"
    case policyDocument = "/v1/policy/documents/{version}"
    case auditRequests = "/v1/audit/requests"
    case auditHead = "/v1/audit/head"
    /// Anything else (404); the name metrics count it under.
    case unknown = "other"

    /// Every real template (all but `unknown`).
    public static let templates = allCases.filter { $0 != .unknown }

    /// Methods each route accepts (HEAD goes with GET).
    public var methods: [String] {
        switch self {
        case .vms: ["GET", "POST"]
        case .vm: ["GET", "DELETE"]
        case .vmStart, .vmPause, .vmResume, .vmStop, .policyValidate, .policyReplay, .logout: ["POST"]
        case .login: ["GET", "POST"]
        case .policy: ["GET", "PUT"]
        case .unknown: []
        default: ["GET"]
        }
    }

    /// Under /v1 (needs a token on TCP).
    public var isVersioned: Bool { rawValue.hasPrefix("/v1") }

    /// The path with its parameter filled in, and a query when given:
    /// `APIRoute.vmStop.path(7)` is `/v1/vms/7/stop`; `APIRoute.events.path(query: "after=5")` is `/v1/events?after=5`.
    public func path(_ parameter: (any CustomStringConvertible)? = nil, query: String = "") -> String {
        let filled = rawValue.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.first == "{" ? parameter.map { "\($0)" } ?? String(segment) : String(segment)
        }.joined(separator: "/")
        return query.isEmpty ? filled : filled + "?" + query
    }

    /// The templates split into segments, literal templates before those with a parameter.
    private static let table: [(route: APIRoute, segments: [Substring])] =
        templates
        .map { ($0, $0.rawValue.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { $0 }) }
        .sorted { !$0.route.rawValue.contains("{") && $1.route.rawValue.contains("{") }

    /// The route `path` (without its query) matches, and its parameter segment if the
    /// template has one (possibly empty: the caller says what a bad one is). Pure.
    public static func match(_ path: Substring) -> (route: APIRoute, parameter: Substring?) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        candidates: for (route, segments) in table where segments.count == parts.count {
            var parameter: Substring?
            for (segment, part) in zip(segments, parts) {
                if segment.first == "{" {
                    parameter = part
                } else if segment != part {
                    continue candidates
                }
            }
            return (route, parameter)
        }
        return (.unknown, nil)
    }
}
