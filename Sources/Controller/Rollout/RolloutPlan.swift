/// How many hosts the canary wave takes: `N` hosts or `N%` of the inventory. Pure.
public enum CanarySize: Sendable, Equatable, CustomStringConvertible {
    case hosts(Int)
    case percent(Double)

    /// `3` or `5%` (or `0.5%`); nil for anything else, zero or a share over 100%.
    public init?(_ text: String) {
        if text.hasSuffix("%") {
            guard let share = Double(text.dropLast()), share.isFinite, share > 0, share <= 100 else { return nil }
            self = .percent(share)
        } else {
            guard let count = Int(text), count > 0 else { return nil }
            self = .hosts(count)
        }
    }

    /// The canary's size among `total` hosts: at least one (when there are any), at most all.
    public func count(of total: Int) -> Int {
        guard total > 0 else { return 0 }
        switch self {
        case .hosts(let count): return min(count, total)
        case .percent(let share): return min(max(Int((Double(total) * share / 100).rounded(.up)), 1), total)
        }
    }

    public var description: String {
        switch self {
        case .hosts(let count): "\(count)"
        case .percent(let share): "\(share)%"
        }
    }
}

public struct RolloutPlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The waves of a rollout, as indices into the inventory. Pure and deterministic: the same
/// inventory, canary, labels, seed and step give the same waves (so a resumed rollout and
/// its report agree with the first run).
///
/// The canary is the first `canary` hosts whose labels include every `select` pair, in
/// inventory order; without `select`, a sample drawn with `seed`. Every later wave is
/// `step` times the one before (rounded up), over the remaining hosts in inventory order,
/// until every host is in one.
public struct RolloutPlan: Sendable, Equatable {
    public let waves: [[Int]]

    public init(waves: [[Int]]) {
        self.waves = waves
    }

    public init(
        hosts: [HostEntry], canary: CanarySize, select: [String: String] = [:], seed: UInt64,
        step: Double = 4
    ) throws(RolloutPlanError) {
        guard !hosts.isEmpty else { throw RolloutPlanError(message: "the inventory names no host") }
        guard step.isFinite, step >= 1, step <= 1000 else {
            throw RolloutPlanError(message: "--step must be from 1 to 1000")
        }
        let size = canary.count(of: hosts.count)
        let chosen: [Int]
        if select.isEmpty {
            var generator = SeededGenerator(state: seed)
            var indices = Array(hosts.indices)
            // The first `size` places of a Fisher–Yates shuffle: a uniform sample.
            for place in 0..<size {
                let pick = place + Int(generator.next() % UInt64(indices.count - place))
                indices.swapAt(place, pick)
            }
            chosen = indices.prefix(size).sorted()
        } else {
            let matching = hosts.indices.filter { index in select.allSatisfy { hosts[index].labels[$0.key] == $0.value }
            }
            guard !matching.isEmpty else {
                let wanted = select.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                throw RolloutPlanError(message: "no host in the inventory has the labels \(wanted)")
            }
            chosen = Array(matching.prefix(size))
        }
        var waves = [chosen]
        let inCanary = Set(chosen)
        var rest = hosts.indices.filter { !inCanary.contains($0) }[...]
        var next = Double(chosen.count)
        while !rest.isEmpty {
            next = (next * step).rounded(.up)
            let take = Int(min(next, Double(rest.count)))
            waves.append(Array(rest.prefix(take)))
            rest = rest.dropFirst(take)
        }
        self.waves = waves
    }

    /// The wave a host is in.
    public func wave(of host: Int) -> Int? {
        waves.firstIndex { $0.contains(host) }
    }
}

/// SplitMix64: a small seeded generator, so a canary drawn with `--seed` is drawn again
/// the same (and tests replay exactly).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(state: UInt64) {
        self.state = state
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
