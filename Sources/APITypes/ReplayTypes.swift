/// `POST /v1/policy/replay`: what a candidate policy would have decided for the
/// recorded conversion requests of this host. Nothing changes.
public struct PolicyReplayReport: Codable, Sendable, Equatable {
    public struct Transition: Codable, Sendable, Equatable {
        /// allowed or denied.
        public var from: String
        public var to: String
        public var count: Int
        public init(from: String, to: String, count: Int) {
            self.from = from
            self.to = to
            self.count = count
        }
    }

    public struct RuleCount: Codable, Sendable, Equatable {
        /// `rule N`, `default explicit`, `default implicit`, `max_shared_bytes` or `max_conversions_per_second`.
        public var source: String
        public var allowed: Int
        public var denied: Int
        public init(source: String, allowed: Int, denied: Int) {
            self.source = source
            self.allowed = allowed
            self.denied = denied
        }
    }

    public struct VMCount: Codable, Sendable, Equatable {
        public var vmId: Int64
        public var name: String
        public var requests: Int
        public var allowedToDenied: Int
        public var deniedToAllowed: Int
        public init(vmId: Int64, name: String, requests: Int, allowedToDenied: Int, deniedToAllowed: Int) {
            self.vmId = vmId
            self.name = name
            self.requests = requests
            self.allowedToDenied = allowedToDenied
            self.deniedToAllowed = deniedToAllowed
        }
    }

    public struct Decision: Codable, Sendable, Equatable {
        /// The recorded decision (applied, denied, failed, incomplete), or the candidate's (allowed, denied).
        public var decision: String
        public var reason: String
        public init(decision: String, reason: String) {
            self.decision = decision
            self.reason = reason
        }
    }

    public struct Sample: Codable, Sendable, Equatable {
        public var eventId: Int64
        public var vmId: Int64
        public var requestedNs: UInt64
        public var gpa: UInt64
        public var size: UInt64
        public var direction: String
        public var trigger: String
        public var recorded: Decision
        public var candidate: Decision
        public init(
            eventId: Int64, vmId: Int64, requestedNs: UInt64, gpa: UInt64, size: UInt64, direction: String,
            trigger: String,
            recorded: Decision, candidate: Decision
        ) {
            self.eventId = eventId
            self.vmId = vmId
            self.requestedNs = requestedNs
            self.gpa = gpa
            self.size = size
            self.direction = direction
            self.trigger = trigger
            self.recorded = recorded
            self.candidate = candidate
        }
    }

    /// The candidate's version (SHA-256 of its canonical form) and the version in force here.
    public var candidateVersion: String
    public var currentVersion: String
    public var sinceNs: UInt64?
    public var untilNs: UInt64?
    public var vmId: Int64?
    /// Requests replayed (those the policy decided when they were made).
    public var requests: Int
    /// Requests decided differently.
    public var changed: Int
    /// allowed→denied, denied→allowed, and the unchanged pairs.
    public var transitions: [Transition]
    public var byRule: [RuleCount]
    public var byVm: [VMCount]
    /// Up to `samples` requests decided differently, oldest first.
    public var samples: [Sample]
    /// Requests the policy never saw: invalid ones, and those still pending.
    public var skipped: [String: Int]
    /// Denials over a VM's recording budget, counted but not recorded one by one: not replayed.
    public var unrecordedDenials: Int
    /// True when `db prune` removed events of the window: the replay sees only what remains.
    public var historyPruned: Bool

    public init(
        candidateVersion: String, currentVersion: String, sinceNs: UInt64?, untilNs: UInt64?, vmId: Int64?,
        requests: Int,
        changed: Int, transitions: [Transition], byRule: [RuleCount], byVm: [VMCount], samples: [Sample],
        skipped: [String: Int], unrecordedDenials: Int, historyPruned: Bool
    ) {
        self.candidateVersion = candidateVersion
        self.currentVersion = currentVersion
        self.sinceNs = sinceNs
        self.untilNs = untilNs
        self.vmId = vmId
        self.requests = requests
        self.changed = changed
        self.transitions = transitions
        self.byRule = byRule
        self.byVm = byVm
        self.samples = samples
        self.skipped = skipped
        self.unrecordedDenials = unrecordedDenials
        self.historyPruned = historyPruned
    }

    /// Requests the candidate would deny that were allowed: what `--if-replay-clean` refuses.
    public var allowedToDenied: Int { transitions.first { $0.from == "allowed" && $0.to == "denied" }?.count ?? 0 }
}
