import Foundation

/// The conversion policy of DESIGN §4: defaults, first-match rules, limits.
public struct Policy: Sendable, Equatable {
    public enum Action: String, Sendable, Codable, CaseIterable { case allow, deny }

    public struct Defaults: Sendable, Equatable {
        public var explicit: Action = .allow
        public var implicit: Action = .allow
        public var discard = true
        public init() {}
    }

    public struct Match: Sendable, Equatable {
        public var vm: String?
        public var direction: ConversionDirection?
        public var trigger: ConversionTrigger?
        /// Matches requests overlapping this range.
        public var gpa: PageRange?
        public init(vm: String? = nil, direction: ConversionDirection? = nil, trigger: ConversionTrigger? = nil, gpa: PageRange? = nil) {
            self.vm = vm; self.direction = direction; self.trigger = trigger; self.gpa = gpa
        }
    }

    public struct Rule: Sendable, Equatable {
        public var match: Match
        public var action: Action
        public var reason: String?
        /// Overrides `defaults.discard` for conversions this rule allows.
        public var discard: Bool?
        public init(match: Match, action: Action, reason: String? = nil, discard: Bool? = nil) {
            self.match = match; self.action = action; self.reason = reason; self.discard = discard
        }
    }

    /// Limits apply per VM.
    public struct Limits: Sendable, Equatable {
        public var maxSharedBytes: UInt64?
        public var maxConversionsPerSecond: UInt64?
        public init(maxSharedBytes: UInt64? = nil, maxConversionsPerSecond: UInt64? = nil) {
            self.maxSharedBytes = maxSharedBytes; self.maxConversionsPerSecond = maxConversionsPerSecond
        }
    }

    public var defaults = Defaults()
    public var rules: [Rule] = []
    public var limits = Limits()

    public init(defaults: Defaults = Defaults(), rules: [Rule] = [], limits: Limits = Limits()) {
        self.defaults = defaults; self.rules = rules; self.limits = limits
    }
}

/// An invalid policy document: which field, and what is wrong with it.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A JSON path such as `rules[0].match.direction`.
    public var field: String
    public var message: String
    public var description: String { "\(field): \(message)" }
}

extension Policy {
    /// Parses and validates a policy document; rejects it whole on the first problem.
    public static func parse(_ bytes: [UInt8]) throws(PolicyError) -> Policy {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            throw PolicyError(field: "$", message: "not valid JSON")
        }
        if let duplicate = JSONDuplicateKeys.first(in: bytes) {
            throw PolicyError(field: duplicate, message: "appears more than once in its object; say it once")
        }
        var parser = Parser()
        return try parser.policy(root)
    }

    private struct Parser {
        func object(_ value: Any, _ path: String, allowed: Set<String>) throws(PolicyError) -> [String: Any] {
            guard let dict = value as? [String: Any] else { throw PolicyError(field: path, message: "must be an object") }
            if let unknown = dict.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw PolicyError(field: join(path, unknown), message: "unknown field (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            return dict
        }

        enum NumberKind { case boolean, integer, unsignedInteger, floatingPoint }

        /// JSON booleans and numbers both arrive as NSNumber; the ObjC type code tells them apart.
        static func kind(of number: NSNumber) -> NumberKind {
            switch String(cString: number.objCType) {
            case "c", "B": .boolean
            case "Q", "L", "I", "S", "C": .unsignedInteger
            case "d", "f": .floatingPoint
            default: .integer
            }
        }

        func join(_ path: String, _ key: String) -> String { path == "$" ? key : "\(path).\(key)" }

        func string(_ value: Any, _ path: String) throws(PolicyError) -> String {
            guard let s = value as? String else { throw PolicyError(field: path, message: "must be a string") }
            return s
        }

        func bool(_ value: Any, _ path: String) throws(PolicyError) -> Bool {
            guard let number = value as? NSNumber, Self.kind(of: number) == .boolean else {
                throw PolicyError(field: path, message: "must be true or false")
            }
            return number.boolValue
        }

        func enumValue<T: RawRepresentable>(_ value: Any, _ path: String, _: T.Type) throws(PolicyError) -> T
        where T.RawValue == String, T: CaseIterable {
            let raw = try string(value, path)
            guard let parsed = T(rawValue: raw) else {
                throw PolicyError(field: path, message: "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return parsed
        }

        /// A byte count or address: a non-negative integer or a "0x…" / decimal string.
        func unsigned(_ value: Any, _ path: String) throws(PolicyError) -> UInt64 {
            if let number = value as? NSNumber {
                switch Self.kind(of: number) {
                case .unsignedInteger: return number.uint64Value
                case .integer where number.int64Value >= 0: return UInt64(number.int64Value)
                default: throw PolicyError(field: path, message: "must be a non-negative integer")
                }
            }
            if let text = value as? String {
                let parsed = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
                if let parsed { return parsed }
            }
            throw PolicyError(field: path, message: "must be a non-negative integer or a \"0x…\" string")
        }

        mutating func policy(_ root: Any) throws(PolicyError) -> Policy {
            let dict = try object(root, "$", allowed: ["defaults", "rules", "limits"])
            var policy = Policy()
            if let value = dict["defaults"] {
                let d = try object(value, "defaults", allowed: ["explicit", "implicit", "discard"])
                if let v = d["explicit"] { policy.defaults.explicit = try enumValue(v, "defaults.explicit", Action.self) }
                if let v = d["implicit"] { policy.defaults.implicit = try enumValue(v, "defaults.implicit", Action.self) }
                if let v = d["discard"] { policy.defaults.discard = try bool(v, "defaults.discard") }
            }
            if let value = dict["rules"] {
                guard let list = value as? [Any] else { throw PolicyError(field: "rules", message: "must be an array") }
                for (index, item) in list.enumerated() { policy.rules.append(try rule(item, "rules[\(index)]")) }
            }
            if let value = dict["limits"] {
                let l = try object(value, "limits", allowed: ["max_shared_bytes", "max_conversions_per_second"])
                if let v = l["max_shared_bytes"] { policy.limits.maxSharedBytes = try unsigned(v, "limits.max_shared_bytes") }
                if let v = l["max_conversions_per_second"] {
                    let rate = try unsigned(v, "limits.max_conversions_per_second")
                    guard rate > 0 else { throw PolicyError(field: "limits.max_conversions_per_second", message: "must be at least 1") }
                    policy.limits.maxConversionsPerSecond = rate
                }
            }
            return policy
        }

        func rule(_ value: Any, _ path: String) throws(PolicyError) -> Rule {
            let dict = try object(value, path, allowed: ["match", "action", "reason", "discard"])
            guard let actionValue = dict["action"] else { throw PolicyError(field: "\(path).action", message: "is required") }
            var rule = Rule(match: Match(), action: try enumValue(actionValue, "\(path).action", Action.self))
            if let v = dict["reason"] { rule.reason = try string(v, "\(path).reason") }
            if let v = dict["discard"] { rule.discard = try bool(v, "\(path).discard") }
            if let v = dict["match"] {
                let m = try object(v, "\(path).match", allowed: ["vm", "direction", "trigger", "gpa"])
                if let vm = m["vm"] {
                    let pattern = try string(vm, "\(path).match.vm")
                    guard !pattern.isEmpty else { throw PolicyError(field: "\(path).match.vm", message: "must not be empty") }
                    rule.match.vm = pattern
                }
                if let d = m["direction"] { rule.match.direction = try enumValue(d, "\(path).match.direction", ConversionDirection.self) }
                if let t = m["trigger"] { rule.match.trigger = try enumValue(t, "\(path).match.trigger", ConversionTrigger.self) }
                if let g = m["gpa"] {
                    guard let pair = g as? [Any], pair.count == 2 else {
                        throw PolicyError(field: "\(path).match.gpa", message: "must be [start, end] (end exclusive)")
                    }
                    let start = try unsigned(pair[0], "\(path).match.gpa[0]")
                    let end = try unsigned(pair[1], "\(path).match.gpa[1]")
                    guard start < end else { throw PolicyError(field: "\(path).match.gpa", message: "start must be below end") }
                    rule.match.gpa = PageRange(start: start, end: end)
                }
            }
            return rule
        }
    }
}

/// What the policy decided for one request.
public struct PolicyDecision: Sendable, Equatable {
    public var allowed: Bool
    public var reason: String
    public var discard: Bool
    /// Index of the rule that decided, nil for defaults and limits.
    public var ruleIndex: Int?

    public init(allowed: Bool, reason: String, discard: Bool, ruleIndex: Int? = nil) {
        self.allowed = allowed; self.reason = reason; self.discard = discard; self.ruleIndex = ruleIndex
    }
}

extension Policy {
    /// First matching rule, else the defaults; then the limits for allowed requests.
    /// - Parameters:
    ///   - sharedBytesAfter: the VM's shared bytes if this request were applied.
    ///   - limiter: the VM's rate limiter for `limits.maxConversionsPerSecond` (nil when unlimited).
    public func evaluate(_ request: ConversionRequest, vm: String, sharedBytesAfter: UInt64,
                         nowNanos: UInt64, limiter: inout RateLimiter?) -> PolicyDecision {
        var decision: PolicyDecision
        if let index = rules.firstIndex(where: { $0.match.matches(request, vm: vm) }) {
            let rule = rules[index]
            decision = PolicyDecision(allowed: rule.action == .allow,
                                      reason: rule.reason ?? "rule \(index) (\(rule.action.rawValue))",
                                      discard: rule.discard ?? defaults.discard, ruleIndex: index)
        } else {
            let action = request.trigger == .explicit ? defaults.explicit : defaults.implicit
            decision = PolicyDecision(allowed: action == .allow, reason: "default \(request.trigger.rawValue) \(action.rawValue)",
                                      discard: defaults.discard)
        }
        guard decision.allowed else { return decision }
        if request.direction == .toShared, let max = limits.maxSharedBytes, sharedBytesAfter > max {
            return PolicyDecision(allowed: false, reason: "max_shared_bytes \(max) exceeded (would be \(sharedBytesAfter))",
                                  discard: decision.discard)
        }
        if var bucket = limiter {
            let allowed = bucket.allow(atNanos: nowNanos)
            limiter = bucket
            if !allowed {
                return PolicyDecision(allowed: false, reason: "max_conversions_per_second \(bucket.rate) exceeded",
                                      discard: decision.discard)
            }
        }
        return decision
    }
}

extension Policy.Match {
    public func matches(_ request: ConversionRequest, vm name: String) -> Bool {
        if let vm, !Glob.matches(vm, name) { return false }
        if let direction, direction != request.direction { return false }
        if let trigger, trigger != request.trigger { return false }
        if let gpa, !gpa.overlaps(request.range) { return false }
        return true
    }
}

/// A policy and its version (the SHA-256 of the document it came from).
public struct VersionedPolicy: Sendable, Equatable {
    public var policy: Policy
    public var version: String
    public var document: [UInt8]

    public init(document: [UInt8]) throws(PolicyError) {
        policy = try Policy.parse(document)
        version = SHA256.hex(document)
        self.document = document
    }

    /// The built-in policy: allow everything, discard on conversion (QEMU's behaviour).
    public static let builtIn: VersionedPolicy = {
        let text = #"{"defaults":{"explicit":"allow","implicit":"allow","discard":true},"rules":[],"limits":{}}"#
        return try! VersionedPolicy(document: Array(text.utf8))
    }()
}
