import MemoryModel
import Platform

/// Counts of a VM's faults and conversions, for summaries. Pure value type.
public struct ConversionStatistics: Sendable, Equatable {
    public struct Key: Sendable, Hashable, Comparable {
        public var direction: ConversionDirection
        public var trigger: ConversionTrigger
        public var decision: ConversionDecision

        public init(direction: ConversionDirection, trigger: ConversionTrigger, decision: ConversionDecision) {
            self.direction = direction
            self.trigger = trigger
            self.decision = decision
        }

        public static func < (a: Key, b: Key) -> Bool {
            (a.direction.rawValue, a.trigger.rawValue, a.decision.rawValue) < (
                b.direction.rawValue, b.trigger.rawValue, b.decision.rawValue
            )
        }
    }

    public private(set) var conversions: [Key: Int] = [:]
    public private(set) var convertedBytes: [Key: UInt64] = [:]
    public private(set) var faults: [EventSource: Int] = [:]
    /// Faults by access: read, write, exec, or unknown.
    public private(set) var faultAccesses: [String: Int] = [:]
    /// Faults on pages already in the wanted state by the time they were handled
    /// (another vCPU converted them first): resolved without a conversion.
    public private(set) var faultsWithoutConversion = 0
    /// From request to completion, for conversions that completed (applied or failed).
    public private(set) var latency = LatencyHistogram()
    /// Events over the recording budget: counted in `event_aggregates`, not recorded one row each.
    public private(set) var unrecorded: [AggregateKind: Int] = [:]

    public init() {}

    /// Counts another process made (a VM process's statistics on the wire).
    public init(
        conversions: [Key: Int], convertedBytes: [Key: UInt64], faults: [EventSource: Int],
        faultAccesses: [String: Int],
        faultsWithoutConversion: Int, latency: LatencyHistogram, unrecorded: [AggregateKind: Int]
    ) {
        self.conversions = conversions
        self.convertedBytes = convertedBytes
        self.faults = faults
        self.faultAccesses = faultAccesses
        self.faultsWithoutConversion = faultsWithoutConversion
        self.latency = latency
        self.unrecorded = unrecorded
    }

    public mutating func count(_ record: ConversionRecord) {
        let key = Key(direction: record.direction, trigger: record.trigger, decision: record.decision)
        conversions[key, default: 0] += 1
        // Sizes come from guests (invalid requests included): saturate, never trap.
        let (sum, overflow) = convertedBytes[key, default: 0].addingReportingOverflow(record.size)
        convertedBytes[key] = overflow ? .max : sum
        if let completed = record.completedNanos, completed >= record.requestedNanos {
            latency.observe(nanos: completed - record.requestedNanos)
        }
    }

    public mutating func countUnrecorded(_ kind: AggregateKind) {
        unrecorded[kind, default: 0] += 1
    }

    public mutating func count(_ fault: MemoryFaultRecord) {
        faults[fault.source, default: 0] += 1
        faultAccesses[fault.access?.rawValue ?? "unknown", default: 0] += 1
    }

    public mutating func countFaultWithoutConversion() {
        faultsWithoutConversion += 1
    }

    public func total(decision: ConversionDecision? = nil, trigger: ConversionTrigger? = nil) -> Int {
        conversions.filter {
            (decision == nil || $0.key.decision == decision) && (trigger == nil || $0.key.trigger == trigger)
        }
        .values.reduce(0, +)
    }

    /// Lines such as `to_shared explicit applied 12 (49152 bytes)`.
    public var summaryLines: [String] {
        let faultLine =
            "memory faults: "
            + (faults.isEmpty
                ? "0"
                : faults.sorted { $0.key.rawValue < $1.key.rawValue }
                    .map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", "))
            + (faultsWithoutConversion > 0 ? " (\(faultsWithoutConversion) needed no conversion)" : "")
        return [faultLine, "conversions: \(total())"]
            + conversions.keys.sorted().map { key in
                "  \(key.direction.rawValue) \(key.trigger.rawValue) \(key.decision.rawValue): \(conversions[key] ?? 0) (\(convertedBytes[key] ?? 0) bytes)"
            }
    }
}
