import KVM
import MemoryModel
import Platform
import VMM

/// Counts over every VM this agent has held since it started, deleted ones
/// included: what `/metrics` exports as counters, which must never go down.
/// Every known label combination is present from the start, at 0. Pure value type.
public struct HostTotals: Sendable, Equatable {
    /// KVM_RUN exits by kind (`VCPUExit.Kind.name`).
    public private(set) var exits: [String: UInt64]
    public private(set) var faults: [EventSource: UInt64]
    /// Faults by access: read, write, exec, unknown.
    public private(set) var faultAccesses: [String: UInt64]
    public private(set) var conversions: [ConversionStatistics.Key: UInt64]
    public private(set) var convertedBytes: [ConversionStatistics.Key: UInt64]
    public private(set) var conversionLatency = LatencyHistogram()
    public private(set) var unrecorded: [AggregateKind: UInt64]

    public init() {
        exits = Dictionary(uniqueKeysWithValues: VCPUExit.Kind.allCases.map { ($0.name, 0) })
        faults = Dictionary(uniqueKeysWithValues: EventSource.allCases.map { ($0, 0) })
        faultAccesses = Dictionary(
            uniqueKeysWithValues: (FaultAccess.allCases.map(\.rawValue) + ["unknown"]).map { ($0, 0) })
        var conversions: [ConversionStatistics.Key: UInt64] = [:]
        for direction in ConversionDirection.allCases {
            for trigger in ConversionTrigger.allCases {
                // Pending and incomplete are states of a row, never a final count.
                for decision in ConversionDecision.allCases where decision != .pending && decision != .incomplete {
                    conversions[ConversionStatistics.Key(direction: direction, trigger: trigger, decision: decision)] =
                        0
                }
            }
        }
        self.conversions = conversions
        convertedBytes = conversions
        unrecorded = Dictionary(uniqueKeysWithValues: AggregateKind.allCases.map { ($0, 0) })
    }

    /// Adds one VM's counts.
    public mutating func add(exits vmExits: [(kind: String, count: UInt64)], statistics: ConversionStatistics) {
        for (kind, count) in vmExits { exits[kind, default: 0] &+= count }
        for (source, count) in statistics.faults { faults[source, default: 0] &+= UInt64(count) }
        for (access, count) in statistics.faultAccesses { faultAccesses[access, default: 0] &+= UInt64(count) }
        for (key, count) in statistics.conversions { conversions[key, default: 0] &+= UInt64(count) }
        for (key, bytes) in statistics.convertedBytes { convertedBytes[key, default: 0] &+= bytes }
        for (kind, count) in statistics.unrecorded { unrecorded[kind, default: 0] &+= UInt64(count) }
        conversionLatency.merge(statistics.latency)
    }

    /// Adds the counts of a VM as it looks now.
    public mutating func add(_ snapshot: VMSnapshot) {
        add(exits: snapshot.exitCounts, statistics: snapshot.statistics)
    }
}
