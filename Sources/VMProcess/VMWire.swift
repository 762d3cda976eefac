import EventStore
import Foundation
import MemoryModel
import Platform
import VMM

/// The VM-process protocol (docs/VM-PROCESS.md): length-prefixed JSON messages on a
/// Unix socket, one request and one reply at a time. Pure types.
public enum VMWire {
    /// Bumped on any change a peer of the previous version would misread.
    public static let protocolVersion = 1
    /// Larger messages end the connection (counted, never read).
    public static let maxMessageBytes = 4 << 20
}

/// What a VM process is created from: handed to it at spawn, never over the socket.
public struct VMProcessSpec: Codable, Sendable, Equatable {
    public var vmID: Int64
    public var name: String
    public var memoryBytes: UInt64
    public var vcpus: Int
    public var commandLine: String
    public var initialState: String
    public var backend: String?
    public var maxRuns: Int?
    public var recordingBudget: UInt64?
    public var aliasMechanism: String?
    /// The policy document in force when the VM was created.
    public var policy: String
    /// Bytes of the VM's ring (a power of two).
    public var ringBytes: Int = VMRing.defaultCapacity
    /// Start the guest as soon as it is built (`POST /v1/vms` with start): its first instructions
    /// run while the agent registers the VM; its records wait in the ring until then.
    public var startAtOnce = false

    public init(
        vmID: Int64, name: String, memoryBytes: UInt64, vcpus: Int, commandLine: String, initialState: String,
        backend: String?, maxRuns: Int?, recordingBudget: UInt64?, aliasMechanism: String?, policy: String
    ) {
        self.vmID = vmID
        self.name = name
        self.memoryBytes = memoryBytes
        self.vcpus = vcpus
        self.commandLine = commandLine
        self.initialState = initialState
        self.backend = backend
        self.maxRuns = maxRuns
        self.recordingBudget = recordingBudget
        self.aliasMechanism = aliasMechanism
        self.policy = policy
    }
}

/// The one line a VM process writes on its ready pipe: what it built, or why it could not.
public struct VMReady: Codable, Sendable, Equatable {
    public var pid: Int32?
    public var backend: String?
    public var dataRAMStart: UInt64?
    public var dataRAMEnd: UInt64?
    public var error: String?
    /// With `startAtOnce`: when the guest started (nil: it did not start, and `error` may say why).
    public var startedNanos: UInt64?

    public init(
        pid: Int32? = nil, backend: String? = nil, dataRAMStart: UInt64? = nil, dataRAMEnd: UInt64? = nil,
        error: String? = nil
    ) {
        self.pid = pid
        self.backend = backend
        self.dataRAMStart = dataRAMStart
        self.dataRAMEnd = dataRAMEnd
        self.error = error
    }
}

public struct VMRequest: Codable, Sendable, Equatable {
    public enum Operation: String, Codable, Sendable {
        case hello, start, pause, resume, stop, policy, console, status
    }
    public var op: Operation
    /// hello: the agent's protocol version.
    public var protocolVersion: Int?
    /// stop: why.
    public var reason: String?
    /// policy: the new document.
    public var policy: String?
    /// console: the offset to read from.
    public var after: Int?

    public init(
        _ op: Operation, protocolVersion: Int? = nil, reason: String? = nil, policy: String? = nil, after: Int? = nil
    ) {
        self.op = op
        self.protocolVersion = protocolVersion
        self.reason = reason
        self.policy = policy
        self.after = after
    }
}

public struct VMReply: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    /// hello: the VM process's protocol version, VM id and pid.
    public var protocolVersion: Int?
    public var vmID: Int64?
    public var pid: Int32?
    public var status: VMStatusWire?
    public var console: VMConsoleWire?
    /// hello: the VM's state and the policy version it enforces (the engine is not asked).
    public var state: String?
    public var policyVersion: String?

    public init(ok: Bool, error: String? = nil) {
        self.ok = ok
        self.error = error
    }
}

public struct VMConsoleWire: Codable, Sendable, Equatable {
    public var start: Int
    public var data: Data
    public var dropped: Int
    public init(start: Int, data: Data, dropped: Int) {
        self.start = start
        self.data = data
        self.dropped = dropped
    }
}

/// A VM's state as its process sees it.
public struct VMStatusWire: Codable, Sendable, Equatable {
    public var state: String
    public var reason: String?
    public var exitStatus: Int32?
    public var backend: String
    public var policyVersion: String
    public var consoleBytes: Int
    public var dataRAMStart: UInt64
    public var dataRAMEnd: UInt64
    public var runs: [VMRunWire]
    public var statistics: VMStatisticsWire
    /// Records that waited for room in the ring, and how long in all.
    public var ringWaits: UInt64
    public var ringWaitNanos: UInt64
    /// Connections the VM process refused or ended: another user's, or a bad or oversized message.
    public var refusedConnections: Int?
}

public struct VMRunWire: Codable, Sendable, Equatable {
    public var start: UInt64
    public var end: UInt64
    public var shared: Bool
}

/// `ConversionStatistics` and exit counts on the wire.
public struct VMStatisticsWire: Codable, Sendable, Equatable {
    public struct Count: Codable, Sendable, Equatable {
        public var direction: String
        public var trigger: String
        public var decision: String
        public var count: Int
        public var bytes: UInt64
    }
    public var conversions: [Count]
    public var faults: [String: Int]
    public var faultAccesses: [String: Int]
    public var faultsWithoutConversion: Int
    public var unrecorded: [String: Int]
    public var latencyCounts: [UInt64]
    public var latencySumSeconds: Double
    public var latencyCount: UInt64
    public var exits: [String: UInt64]

    public init(_ statistics: ConversionStatistics, exits: [(kind: String, count: UInt64)]) {
        conversions = statistics.conversions.keys.sorted().map { key in
            Count(
                direction: key.direction.rawValue, trigger: key.trigger.rawValue, decision: key.decision.rawValue,
                count: statistics.conversions[key] ?? 0, bytes: statistics.convertedBytes[key] ?? 0)
        }
        faults = Dictionary(uniqueKeysWithValues: statistics.faults.map { ($0.key.rawValue, $0.value) })
        faultAccesses = statistics.faultAccesses
        faultsWithoutConversion = statistics.faultsWithoutConversion
        unrecorded = Dictionary(uniqueKeysWithValues: statistics.unrecorded.map { ($0.key.rawValue, $0.value) })
        latencyCounts = statistics.latency.counts
        latencySumSeconds = statistics.latency.sumSeconds
        latencyCount = statistics.latency.count
        self.exits = Dictionary(exits.map { ($0.kind, $0.count) }, uniquingKeysWith: +)
    }

    /// The statistics again; names another version does not know are left out.
    public var statistics: ConversionStatistics {
        var conversions: [ConversionStatistics.Key: Int] = [:]
        var bytes: [ConversionStatistics.Key: UInt64] = [:]
        for count in self.conversions {
            guard let direction = ConversionDirection(rawValue: count.direction),
                let trigger = ConversionTrigger(rawValue: count.trigger),
                let decision = ConversionDecision(rawValue: count.decision)
            else { continue }
            let key = ConversionStatistics.Key(direction: direction, trigger: trigger, decision: decision)
            conversions[key] = count.count
            bytes[key] = count.bytes
        }
        let latency =
            LatencyHistogram(
                bounds: LatencyHistogram.defaultBounds, counts: latencyCounts, sumSeconds: latencySumSeconds,
                count: latencyCount) ?? LatencyHistogram()
        return ConversionStatistics(
            conversions: conversions, convertedBytes: bytes,
            faults: Dictionary(
                uniqueKeysWithValues: faults.compactMap { key, value in EventSource(rawValue: key).map { ($0, value) } }
            ),
            faultAccesses: faultAccesses, faultsWithoutConversion: faultsWithoutConversion, latency: latency,
            unrecorded: Dictionary(
                uniqueKeysWithValues: unrecorded.compactMap { key, value in
                    AggregateKind(rawValue: key).map { ($0, value) }
                }))
    }

    public var exitCounts: [(kind: String, count: UInt64)] {
        exits.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension VMStatusWire {
    /// The page-state map the runs describe (runs outside the bounds are ignored).
    public var pageStates: PageStateMap {
        PageStateMap(
            bounds: PageRange(start: dataRAMStart, end: max(dataRAMStart, dataRAMEnd)), initial: .private,
            runs: runs.map { (start: $0.start, end: $0.end, state: $0.shared ? .shared : .private) })
    }
}

/// The protocol's JSON: the fields' own names as keys (docs/VM-PROCESS.md lists them).
public enum WireCoding {
    public static func encode<T: Encodable>(_ value: T) -> Data {
        let encoder = JSONEncoder()
        // Every type here encodes (no floats that are not finite, no custom encoders that throw).
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    public static func decode<T: Decodable>(_: T.Type, from data: Data) -> T? {
        let decoder = JSONDecoder()
        return try? decoder.decode(T.self, from: data)
    }
}
