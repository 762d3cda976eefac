import Glibc

/// A fixed-bucket latency histogram (Prometheus-style cumulative buckets). Pure value type.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds in seconds.
    public static let defaultBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
    ]

    public let bounds: [Double]
    /// Observations per bucket (not cumulative); the last counts those above every bound.
    public private(set) var counts: [UInt64]
    public private(set) var sumSeconds: Double = 0
    public private(set) var count: UInt64 = 0

    public init(bounds: [Double] = Self.defaultBounds) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count + 1)
    }

    /// A histogram another process counted; nil unless `counts` fits `bounds`.
    public init?(bounds: [Double], counts: [UInt64], sumSeconds: Double, count: UInt64) {
        guard counts.count == bounds.count + 1 else { return nil }
        self.bounds = bounds
        self.counts = counts
        self.sumSeconds = sumSeconds
        self.count = count
    }

    public mutating func observe(nanos: UInt64) {
        let seconds = Double(nanos) / 1e9
        let index = bounds.firstIndex { seconds <= $0 } ?? bounds.count
        counts[index] += 1
        sumSeconds += seconds
        count += 1
    }

    /// Adds another histogram of the same bounds (another VM's, a deleted one's).
    public mutating func merge(_ other: LatencyHistogram) {
        guard other.bounds == bounds else { return }
        for index in counts.indices { counts[index] &+= other.counts[index] }
        sumSeconds += other.sumSeconds
        count &+= other.count
    }

    /// Cumulative counts per bound, as Prometheus `le` buckets (the last is +Inf).
    public var cumulative: [(le: String, count: UInt64)] {
        var running: UInt64 = 0
        var out: [(le: String, count: UInt64)] = []
        for (index, bound) in bounds.enumerated() {
            running += counts[index]
            out.append(("\(bound)", running))
        }
        out.append(("+Inf", count))
        return out
    }
}
