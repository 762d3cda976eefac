/// Which hosts are not on the fleet's policy: the version given with
/// `--expect-version`, else the one most reachable hosts run. Pure.
public struct PolicyDrift: Sendable, Equatable {
    /// The version hosts should run (nil when no version has a plurality of its own).
    public let reference: String?
    private let versions: [String?]

    /// - Parameter versions: each host's version, nil for a host that did not answer.
    public init(versions: [String?], expected: String? = nil) {
        self.versions = versions
        if let expected {
            reference = expected
            return
        }
        var counts: [String: Int] = [:]
        for version in versions.compactMap({ $0 }) { counts[version, default: 0] += 1 }
        let top = counts.values.max() ?? 0
        let leaders = counts.filter { $0.value == top }.map(\.key)
        reference = leaders.count == 1 ? leaders[0] : nil
    }

    /// What to say of host `index`: nil when it is on the reference (or did not answer).
    public func flag(_ index: Int) -> String? {
        guard index < versions.count, let version = versions[index] else { return nil }
        guard let reference else { return "split" }
        // An expected version may be given as a prefix, as tables print it.
        return version.hasPrefix(reference) ? nil : "drift"
    }

    public var anyDrift: Bool { versions.indices.contains { flag($0) != nil } }
}
