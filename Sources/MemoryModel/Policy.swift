import Foundation
import JSON

/// The conversion policy (the README's *Conversion policy*): defaults, first-match rules, limits.
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
        public init(
            vm: String? = nil, direction: ConversionDirection? = nil, trigger: ConversionTrigger? = nil,
            gpa: PageRange? = nil
        ) {
            self.vm = vm
            self.direction = direction
            self.trigger = trigger
            self.gpa = gpa
        }
    }

    public struct Rule: Sendable, Equatable {
        public var match: Match
        public var action: Action
        public var reason: String?
        /// Overrides `defaults.discard` for conversions this rule allows.
        public var discard: Bool?
        public init(match: Match, action: Action, reason: String? = nil, discard: Bool? = nil) {
            self.match = match
            self.action = action
            self.reason = reason
            self.discard = discard
        }
    }

    /// Limits apply per VM.
    public struct Limits: Sendable, Equatable {
        public var maxSharedBytes: UInt64?
        public var maxConversionsPerSecond: UInt64?
        public init(maxSharedBytes: UInt64? = nil, maxConversionsPerSecond: UInt64? = nil) {
            self.maxSharedBytes = maxSharedBytes
            self.maxConversionsPerSecond = maxConversionsPerSecond
        }
    }

    /// A name people can read next to the version hash (optional, part of the document).
    public var name: String?
    public var labels: [String: String] = [:]
    public var defaults = Defaults()
    public var rules: [Rule] = []
    public var limits = Limits()

    public init(defaults: Defaults = Defaults(), rules: [Rule] = [], limits: Limits = Limits()) {
        self.defaults = defaults
        self.rules = rules
        self.limits = limits
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
    /// Parses and validates a policy document (strict JSON, see `StrictJSON`);
    /// rejects it whole on the first problem.
    public static func parse(_ bytes: [UInt8]) throws(PolicyError) -> Policy {
        try parse(document(bytes))
    }

    /// The document's JSON, or the syntax error as a policy error naming where.
    static func document(_ bytes: [UInt8]) throws(PolicyError) -> JSONValue {
        do {
            return try StrictJSON.parse(bytes)
        } catch {
            let (line, column) = Self.lineAndColumn(of: error.offset, in: bytes)
            throw PolicyError(
                field: error.path,
                message: error.kind == .duplicateKey
                    ? error.message
                    : "not valid JSON at line \(line), column \(column) (byte \(error.offset)): \(error.message)")
        }
    }

    /// Where byte `offset` is as an editor shows it: lines from 1 after each LF, columns from 1 in characters. Pure.
    static func lineAndColumn(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1
        var start = 0
        for index in 0..<min(max(offset, 0), bytes.count) where bytes[index] == 0x0A {
            line += 1
            start = index + 1
        }
        let before = Array(bytes[start..<min(max(offset, start), bytes.count)])
        return (line, String(decoding: before, as: UTF8.self).count + 1)
    }

    static func parse(_ root: JSONValue) throws(PolicyError) -> Policy {
        var parser = Parser()
        return try parser.policy(root)
    }

    private struct Parser {
        func object(_ value: JSONValue, _ path: String, allowed: Set<String>) throws(PolicyError) -> [String: JSONValue]
        {
            guard case .object(let members) = value else {
                throw PolicyError(field: path, message: "must be an object")
            }
            if let unknown = members.map(\.key).sorted().first(where: { !allowed.contains($0) }) {
                throw PolicyError(
                    field: join(path, unknown),
                    message: "unknown field (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            return Dictionary(members.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        }

        func join(_ path: String, _ key: String) -> String { path == "$" ? key : "\(path).\(key)" }

        func string(_ value: JSONValue, _ path: String) throws(PolicyError) -> String {
            guard case .string(let s) = value else { throw PolicyError(field: path, message: "must be a string") }
            return s
        }

        func bool(_ value: JSONValue, _ path: String) throws(PolicyError) -> Bool {
            guard case .bool(let flag) = value else { throw PolicyError(field: path, message: "must be true or false") }
            return flag
        }

        func enumValue<T: RawRepresentable>(_ value: JSONValue, _ path: String, _: T.Type) throws(PolicyError) -> T
        where T.RawValue == String, T: CaseIterable {
            let raw = try string(value, path)
            guard let parsed = T(rawValue: raw) else {
                throw PolicyError(
                    field: path, message: "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return parsed
        }

        /// A byte count or address: a non-negative integer or a "0x…" / decimal string.
        func unsigned(_ value: JSONValue, _ path: String) throws(PolicyError) -> UInt64 {
            switch value {
            case .number(let text):
                guard let parsed = UInt64(text) else {
                    throw PolicyError(field: path, message: "must be a non-negative integer below 2^64")
                }
                return parsed
            case .string(let text):
                let parsed =
                    text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
                if let parsed { return parsed }
            default:
                break
            }
            throw PolicyError(field: path, message: "must be a non-negative integer or a \"0x…\" string")
        }

        mutating func policy(_ root: JSONValue) throws(PolicyError) -> Policy {
            let dict = try object(root, "$", allowed: ["name", "labels", "defaults", "rules", "limits"])
            var policy = Policy()
            if let value = dict["name"] {
                let name = try string(value, "name")
                guard (1...128).contains(name.count),
                    !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                else {
                    throw PolicyError(field: "name", message: "must be 1 to 128 characters without control characters")
                }
                policy.name = name
            }
            if let value = dict["labels"] {
                guard case .object(let members) = value else {
                    throw PolicyError(field: "labels", message: "must be an object of strings")
                }
                guard members.count <= 32 else { throw PolicyError(field: "labels", message: "at most 32 labels") }
                for member in members {
                    let text = try string(member.value, "labels.\(member.key)")
                    guard (1...63).contains(member.key.count), text.count <= 256,
                        !(member.key + text).unicodeScalars.contains(where: {
                            $0.properties.generalCategory == .control
                        })
                    else {
                        throw PolicyError(
                            field: "labels.\(member.key)",
                            message: "keys are 1 to 63 characters, values at most 256, no control characters")
                    }
                    policy.labels[member.key] = text
                }
            }
            if let value = dict["defaults"] {
                let d = try object(value, "defaults", allowed: ["explicit", "implicit", "discard"])
                if let v = d["explicit"] {
                    policy.defaults.explicit = try enumValue(v, "defaults.explicit", Action.self)
                }
                if let v = d["implicit"] {
                    policy.defaults.implicit = try enumValue(v, "defaults.implicit", Action.self)
                }
                if let v = d["discard"] { policy.defaults.discard = try bool(v, "defaults.discard") }
            }
            if let value = dict["rules"] {
                guard case .array(let list) = value else {
                    throw PolicyError(field: "rules", message: "must be an array")
                }
                for (index, item) in list.enumerated() { policy.rules.append(try rule(item, "rules[\(index)]")) }
            }
            if let value = dict["limits"] {
                let l = try object(value, "limits", allowed: ["max_shared_bytes", "max_conversions_per_second"])
                if let v = l["max_shared_bytes"] {
                    policy.limits.maxSharedBytes = try unsigned(v, "limits.max_shared_bytes")
                }
                if let v = l["max_conversions_per_second"] {
                    let rate = try unsigned(v, "limits.max_conversions_per_second")
                    guard rate > 0 else {
                        throw PolicyError(field: "limits.max_conversions_per_second", message: "must be at least 1")
                    }
                    policy.limits.maxConversionsPerSecond = rate
                }
            }
            return policy
        }

        func rule(_ value: JSONValue, _ path: String) throws(PolicyError) -> Rule {
            let dict = try object(value, path, allowed: ["match", "action", "reason", "discard"])
            guard let actionValue = dict["action"] else {
                throw PolicyError(field: "\(path).action", message: "is required")
            }
            var rule = Rule(match: Match(), action: try enumValue(actionValue, "\(path).action", Action.self))
            if let v = dict["reason"] { rule.reason = try string(v, "\(path).reason") }
            if let v = dict["discard"] { rule.discard = try bool(v, "\(path).discard") }
            if let v = dict["match"] {
                let m = try object(v, "\(path).match", allowed: ["vm", "direction", "trigger", "gpa"])
                if let vm = m["vm"] {
                    let pattern = try string(vm, "\(path).match.vm")
                    guard !pattern.isEmpty else {
                        throw PolicyError(field: "\(path).match.vm", message: "must not be empty")
                    }
                    rule.match.vm = pattern
                }
                if let d = m["direction"] {
                    rule.match.direction = try enumValue(d, "\(path).match.direction", ConversionDirection.self)
                }
                if let t = m["trigger"] {
                    rule.match.trigger = try enumValue(t, "\(path).match.trigger", ConversionTrigger.self)
                }
                if let g = m["gpa"] {
                    guard case .array(let pair) = g, pair.count == 2 else {
                        throw PolicyError(field: "\(path).match.gpa", message: "must be [start, end] (end exclusive)")
                    }
                    let start = try unsigned(pair[0], "\(path).match.gpa[0]")
                    let end = try unsigned(pair[1], "\(path).match.gpa[1]")
                    guard start < end else {
                        throw PolicyError(field: "\(path).match.gpa", message: "start must be below end")
                    }
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
        self.allowed = allowed
        self.reason = reason
        self.discard = discard
        self.ruleIndex = ruleIndex
    }
}

extension Policy {
    /// First matching rule, else the defaults; then the limits for allowed requests.
    /// - Parameters:
    ///   - sharedBytesAfter: the VM's shared bytes if this request were applied.
    ///   - limiter: the VM's rate limiter for `limits.maxConversionsPerSecond` (nil when unlimited).
    public func evaluate(
        _ request: ConversionRequest, vm: String, sharedBytesAfter: UInt64,
        nowNanos: UInt64, limiter: inout RateLimiter?
    ) -> PolicyDecision {
        var decision: PolicyDecision
        if let index = rules.firstIndex(where: { $0.match.matches(request, vm: vm) }) {
            let rule = rules[index]
            decision = PolicyDecision(
                allowed: rule.action == .allow,
                reason: rule.reason ?? "rule \(index) (\(rule.action.rawValue))",
                discard: rule.discard ?? defaults.discard, ruleIndex: index)
        } else {
            let action = request.trigger == .explicit ? defaults.explicit : defaults.implicit
            decision = PolicyDecision(
                allowed: action == .allow, reason: "default \(request.trigger.rawValue) \(action.rawValue)",
                discard: defaults.discard)
        }
        guard decision.allowed else { return decision }
        if request.direction == .toShared, let max = limits.maxSharedBytes, sharedBytesAfter > max {
            return PolicyDecision(
                allowed: false, reason: "max_shared_bytes \(max) exceeded (would be \(sharedBytesAfter))",
                discard: decision.discard)
        }
        if var bucket = limiter {
            let allowed = bucket.allow(atNanos: nowNanos)
            limiter = bucket
            if !allowed {
                return PolicyDecision(
                    allowed: false, reason: "max_conversions_per_second \(bucket.rate) exceeded",
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

/// A policy and its version: the SHA-256 of the document's canonical form
/// (sorted keys, no insignificant white space), so formatting never changes it.
public struct VersionedPolicy: Sendable, Equatable {
    public var policy: Policy
    public var version: String
    /// The document as it was written (what `GET /v1/policy` returns).
    public var document: [UInt8]

    public init(document: [UInt8]) throws(PolicyError) {
        let json = try Policy.document(document)
        policy = try Policy.parse(json)
        version = SHA256.hex(json.canonical())
        self.document = document
    }

    /// The built-in policy: allow everything, discard on conversion (QEMU's behaviour).
    public static let builtIn: VersionedPolicy = {
        let text =
            #"{"name":"built-in","defaults":{"explicit":"allow","implicit":"allow","discard":true},"rules":[],"limits":{}}"#
        // The literal above is valid; should that ever change, an empty policy is the same allow-all.
        return (try? VersionedPolicy(document: Array(text.utf8)))
            ?? VersionedPolicy(policy: Policy(), version: SHA256.hex([]), document: [])
    }()

    private init(policy: Policy, version: String, document: [UInt8]) {
        self.policy = policy
        self.version = version
        self.document = document
    }
}
