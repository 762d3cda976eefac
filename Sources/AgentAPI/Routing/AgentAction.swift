import APITypes
import EventStore

/// Every request the API understands, parsed at the edge into one typed value.
public enum AgentAction: Sendable, Equatable {
    case health
    case metrics
    case host
    case listVMs
    case createVM(VMCreateRequest)
    case getVM(Int64)
    case startVM(Int64)
    case pauseVM(Int64)
    case resumeVM(Int64)
    case stopVM(Int64)
    case deleteVM(Int64)
    case console(Int64, after: Int)
    case memory(Int64)
    /// The memory map at a past moment (`?at=EVENT_ID|RFC3339`), from the records.
    case pastMemory(Int64, at: MemoryHistory.Moment)
    /// The memory map as SVG, optionally zoomed to [from, to), and at a past moment.
    case memorySVG(Int64, from: UInt64?, to: UInt64?, at: MemoryHistory.Moment? = nil)
    /// Shared bytes over the VM's lifetime, from the records.
    case historySVG(Int64)
    case faults(EventFilter)
    case conversions(EventFilter)
    /// `fromEnd`: no events, only the position from which to follow what comes next.
    case events(after: Int64, limit: Int, fromEnd: Bool)
    /// Server-Sent Events from `after` (nil: from now on).
    case eventStream(after: Int64?, filter: StreamFilter)
    case getPolicy
    /// The new document (already known to parse), the `If-Match` tag, and the channel `MemGate-Change` named (checked; nil: api).
    case putPolicy(document: [UInt8], ifMatch: String, channel: String? = nil)
    case validatePolicy(document: [UInt8])
    /// What the candidate would have decided for the recorded requests in the window.
    case replayPolicy(document: [UInt8], window: EventQueries.ReplayWindow, samples: Int)
    case policyHistory(limit: Int)
    case policyDocument(version: String)
    case auditRequests(after: Int64, limit: Int)
    /// The heads of the audit chains.
    case auditHead
    /// Every kind of event (`kinds=all`), each with its chain value: what `audit pull` verifies.
    case allEvents(after: Int64, limit: Int)
    /// The HTML status page.
    case statusPage
    /// The status page's sign-in: a token from the login form (nil: show the form).
    case login(token: String?)
    /// Ends the browser session the cookie names.
    case logout

    /// Which performer carries an action out (`Actions/`, one file a resource).
    public enum Resource: Sendable {
        case pages, vms, events, policy, audit
    }

    public var resource: Resource {
        switch self {
        case .health, .metrics, .host, .statusPage, .login, .logout: .pages
        case .listVMs, .createVM, .getVM, .startVM, .pauseVM, .resumeVM, .stopVM, .deleteVM, .console, .memory,
            .pastMemory, .memorySVG,
            .historySVG:
            .vms
        case .faults, .conversions, .events, .eventStream, .allEvents: .events
        case .getPolicy, .putPolicy, .validatePolicy, .replayPolicy, .policyDocument, .policyHistory: .policy
        case .auditHead, .auditRequests: .audit
        }
    }

    /// Whether the action changes anything (read-only tokens may not; recorded in `api_requests`).
    public var isMutating: Bool {
        switch self {
        case .createVM, .startVM, .pauseVM, .resumeVM, .stopVM, .deleteVM, .putPolicy: true
        default: false
        }
    }
}

extension APIRoute {
    /// Which resource's parser reads a request on this route (`Parse+*.swift`, one file a resource).
    var resource: AgentAction.Resource {
        switch self {
        case .statusPage, .login, .logout, .healthz, .metrics, .host, .unknown: .pages
        case .vms, .vm, .vmStart, .vmPause, .vmResume, .vmStop, .console, .memory, .memorySVG, .historySVG: .vms
        case .faults, .conversions, .events, .eventStream: .events
        case .policy, .policyValidate, .policyReplay, .policyHistory, .policyDocument: .policy
        case .auditRequests, .auditHead: .audit
        }
    }
}
