/// `GET /v1/host`.
public struct HostInfo: Codable, Sendable, Equatable {
    public struct Backend: Codable, Sendable, Equatable {
        public var name: String
        public var usable: Bool
        public var reason: String
        public init(name: String, usable: Bool, reason: String) {
            self.name = name
            self.usable = usable
            self.reason = reason
        }
    }

    public struct HypercallProbe: Codable, Sendable, Equatable {
        public var outcome: String
        public var detail: String
        public init(outcome: String, detail: String) {
            self.outcome = outcome
            self.detail = detail
        }
    }

    public var version: String
    public var hostname: String
    public var kernel: String
    /// KVM_CHECK_EXTENSION results by capability name, as the agent sees them (hidden ones read 0).
    public var capabilities: [String: Int]
    /// Capabilities the agent acts as if KVM lacked (MEMGATE_KVM_HIDE); absent when none.
    public var hiddenCapabilities: [String]?
    public var backends: [Backend]
    public var hypercallProbe: HypercallProbe
    /// port or vmcall: what guests are told to use for explicit conversions.
    public var conversionTransport: String
    /// How alias-backend VMs convert (protect or memslot) and what the start-up probe found.
    public var aliasMechanism: AliasMechanismInfo?
    public struct AliasMechanismInfo: Codable, Sendable, Equatable {
        /// protect or memslot: what new VMs get.
        public var chosen: String
        /// True when the operator chose it (--alias-mechanism), false when the probe did.
        public var overridden: Bool
        /// mmio_exit, memory_fault_exit, run_failed, no_exit or unavailable.
        public var probeOutcome: String
        public var probeDetail: String
        public init(chosen: String, overridden: Bool, probeOutcome: String, probeDetail: String) {
            self.chosen = chosen
            self.overridden = overridden
            self.probeOutcome = probeOutcome
            self.probeDetail = probeDetail
        }
    }

    public var uptimeSeconds: Double
    /// VMs known to the agent by state.
    public var vms: [String: Int]
    public var policyVersion: String
    /// The `name` of the policy in force, when it has one.
    public var policyName: String?

    public init(
        version: String, hostname: String, kernel: String, capabilities: [String: Int], backends: [Backend],
        hypercallProbe: HypercallProbe, conversionTransport: String, aliasMechanism: AliasMechanismInfo? = nil,
        uptimeSeconds: Double, vms: [String: Int], policyVersion: String
    ) {
        self.aliasMechanism = aliasMechanism
        self.version = version
        self.hostname = hostname
        self.kernel = kernel
        self.capabilities = capabilities
        self.backends = backends
        self.hypercallProbe = hypercallProbe
        self.conversionTransport = conversionTransport
        self.uptimeSeconds = uptimeSeconds
        self.vms = vms
        self.policyVersion = policyVersion
    }
}

/// `POST /v1/policy/validate`: would the document be accepted, and would it change anything.
public struct PolicyValidation: Codable, Sendable, Equatable {
    public var valid: Bool
    /// The version (SHA-256) the document would get.
    public var version: String?
    /// True when it differs from the policy in force.
    public var changed: Bool
    public var currentVersion: String
    /// The offending field and why, when invalid.
    public var field: String?
    public var message: String?

    public init(
        valid: Bool, version: String?, changed: Bool, currentVersion: String, field: String? = nil,
        message: String? = nil
    ) {
        self.valid = valid
        self.version = version
        self.changed = changed
        self.currentVersion = currentVersion
        self.field = field
        self.message = message
    }
}

/// `PUT /v1/policy` answer.
public struct PolicyApplied: Codable, Sendable, Equatable {
    public var version: String
    /// False when the document equals the policy already in force.
    public var changed: Bool
    public init(version: String, changed: Bool) {
        self.version = version
        self.changed = changed
    }
}

/// One application of a policy version.
public struct PolicyHistoryEntry: Codable, Sendable, Equatable {
    /// The application's id on its agent (ascending; never reused).
    public var id: Int64
    public var version: String
    public var appliedNs: UInt64
    public var appliedBy: String
    /// The document's `name`, when it has one.
    public var name: String?
    /// Who (token name or session), through what (`api`, `--policy FILE`, `rollout ID wave N`, `rollback of rollout ID`),
    /// the rollout, and the request's Idempotency-Key. Absent on rows from before they were recorded.
    public var principal: String?
    public var channel: String?
    public var rolloutId: String?
    public var idempotencyKey: String?

    public init(
        id: Int64, version: String, appliedNs: UInt64, appliedBy: String, name: String? = nil, principal: String? = nil,
        channel: String? = nil, rolloutId: String? = nil, idempotencyKey: String? = nil
    ) {
        self.id = id
        self.version = version
        self.appliedNs = appliedNs
        self.appliedBy = appliedBy
        self.name = name
        self.principal = principal
        self.channel = channel
        self.rolloutId = rolloutId
        self.idempotencyKey = idempotencyKey
    }
}

public struct PolicyHistory: Codable, Sendable, Equatable {
    public var entries: [PolicyHistoryEntry]
    public init(entries: [PolicyHistoryEntry]) { self.entries = entries }
}

public struct Health: Codable, Sendable, Equatable {
    public var status: String
    public init(status: String) { self.status = status }
}

/// One admitted request that changed something (or tried to), from `api_requests`.
public struct APIRequestRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var timeNs: UInt64
    public var method: String
    public var path: String
    public var status: Int
    public var durationNs: UInt64
    /// The token's name, or `unix uid N` on the Unix socket.
    public var client: String?
    /// The request chain's value after this row (hex SHA-256; docs/AUDIT-CHAIN.md). Absent from agents before it.
    public var chain: String?

    public init(
        id: Int64, timeNs: UInt64, method: String, path: String, status: Int, durationNs: UInt64, client: String?,
        chain: String? = nil
    ) {
        self.id = id
        self.timeNs = timeNs
        self.method = method
        self.path = path
        self.status = status
        self.durationNs = durationNs
        self.client = client
        self.chain = chain
    }
}

/// `GET /v1/audit/requests`: rows after `after`, and where the next pull starts.
public struct APIRequestPage: Codable, Sendable, Equatable {
    public var items: [APIRequestRecord]
    public var nextAfter: Int64
    public init(items: [APIRequestRecord], nextAfter: Int64) {
        self.items = items
        self.nextAfter = nextAfter
    }
}
