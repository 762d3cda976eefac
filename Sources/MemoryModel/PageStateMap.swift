/// The private/shared state of every page of a VM's data RAM, stored as
/// maximal runs of equal state (coalesced), with running byte totals. Pure.
public struct PageStateMap: Sendable, Equatable {
    public struct Run: Sendable, Equatable, CustomStringConvertible {
        public var range: PageRange
        public var state: PageState
        public var description: String { "\(range) \(state.rawValue)" }
    }

    public let bounds: PageRange
    /// Sorted, non-overlapping, covering `bounds` exactly; neighbours differ in state.
    public private(set) var runs: [Run]
    public private(set) var privateBytes: UInt64
    public var sharedBytes: UInt64 { bounds.size - privateBytes }

    /// Bounds that are not page aligned are shrunk to the whole pages inside them.
    /// A map rebuilt from runs another process or the store reported; runs outside `bounds`
    /// (or empty) are ignored, so nothing read from outside can trap. Pure.
    public init(bounds: PageRange, initial: PageState, runs: [(start: UInt64, end: UInt64, state: PageState)]) {
        self.init(bounds: bounds, initial: initial)
        // Runs that tile the bounds exactly, page aligned and in order (what a map's own runs are) are taken as they
        // are, in one pass; anything else is applied run by run, so nothing read from outside can trap.
        if let tiled = Self.tiling(runs, bounds: self.bounds) {
            self.runs = tiled
            privateBytes = tiled.reduce(0) { $0 + ($1.state == .private ? $1.range.size : 0) }
            return
        }
        for run in runs where run.start >= bounds.start && run.end <= bounds.end && run.start < run.end {
            _ = set(PageRange(start: run.start, end: run.end), to: run.state)
        }
    }

    /// `runs` as this map's runs (neighbours of equal state joined) when they tile `bounds` in order; nil otherwise.
    private static func tiling(_ runs: [(start: UInt64, end: UInt64, state: PageState)], bounds: PageRange) -> [Run]? {
        guard !bounds.isEmpty, runs.first?.start == bounds.start, runs.last?.end == bounds.end else { return nil }
        var out: [Run] = []
        out.reserveCapacity(runs.count)
        var next = bounds.start
        for run in runs {
            guard run.start == next, run.start < run.end, run.start % pageSizeOf == 0, run.end % pageSizeOf == 0 else {
                return nil
            }
            if let last = out.last, last.state == run.state {
                out[out.count - 1].range.end = run.end
            } else {
                out.append(Run(range: PageRange(start: run.start, end: run.end), state: run.state))
            }
            next = run.end
        }
        return out
    }

    private static var pageSizeOf: UInt64 { PageRange.pageSize }

    public init(bounds: PageRange, initial: PageState) {
        let mask = PageRange.pageSize - 1
        let start = bounds.start & mask == 0 ? bounds.start : min((bounds.start | mask) &+ 1, bounds.end & ~mask)
        let bounds = PageRange(start: start, end: bounds.end & ~mask)
        self.bounds = bounds
        runs = bounds.isEmpty ? [] : [Run(range: bounds, state: initial)]
        privateBytes = initial == .private ? bounds.size : 0
    }

    /// Index of the run containing `address` (which must be inside bounds).
    private func runIndex(containing address: UInt64) -> Int {
        var low = 0, high = runs.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if runs[mid].range.start <= address { low = mid } else { high = mid - 1 }
        }
        return low
    }

    public func state(at address: UInt64) -> PageState? {
        guard bounds.contains(address) else { return nil }
        return runs[runIndex(containing: address)].state
    }

    /// The state of every page of `range` if they agree, nil if mixed or out of bounds.
    public func uniformState(of range: PageRange) -> PageState? {
        guard !range.isEmpty, bounds.contains(range) else { return nil }
        let run = runs[runIndex(containing: range.start)]
        return run.range.end >= range.end ? run.state : nil
    }

    /// Bytes of `range` currently in `state`.
    public func bytes(in range: PageRange, state: PageState) -> UInt64 {
        runs(overlapping: range).filter { $0.state == state }.reduce(0) { $0 + $1.range.clamped(to: range).size }
    }

    /// Whole runs (not clipped) that overlap `range`.
    public func runs(overlapping range: PageRange) -> [Run] {
        guard !range.isEmpty, range.overlaps(bounds) else { return [] }
        var index = runIndex(containing: max(range.start, bounds.start))
        var out: [Run] = []
        while index < runs.count, runs[index].range.start < range.end {
            out.append(runs[index])
            index += 1
        }
        return out
    }

    /// Sets every page of `range` to `state`; returns the bytes that actually changed.
    /// A range that is not page aligned or not inside bounds changes nothing (callers
    /// validate first; this is the last line, and it must not take the agent down).
    @discardableResult
    public mutating func set(_ range: PageRange, to state: PageState) -> UInt64 {
        guard range.isPageAligned, bounds.contains(range), !range.isEmpty else { return 0 }
        let changed = bytes(in: range, state: state.opposite)
        guard changed > 0 else { return 0 }
        privateBytes = state == .private ? privateBytes + changed : privateBytes - changed

        let (first, last, replacement) = recoalesced(range, to: state)
        runs.replaceSubrange(first...last, with: replacement)
        return changed
    }

    /// How many runs the map would have after `set(range, to: state)`, without changing it.
    public func runCount(afterSetting range: PageRange, to state: PageState) -> Int {
        guard !range.isEmpty, bounds.contains(range), bytes(in: range, state: state.opposite) > 0 else {
            return runs.count
        }
        let (first, last, replacement) = recoalesced(range, to: state)
        return runs.count - (last - first + 1) + replacement.count
    }

    /// The runs overlapping [start - 1, end + 1) and what replaces them once `range` is `state`.
    private func recoalesced(_ range: PageRange, to state: PageState) -> (first: Int, last: Int, replacement: [Run]) {
        let first = runIndex(containing: range.start == bounds.start ? range.start : range.start - 1)
        let last = runIndex(containing: range.end == bounds.end ? range.end - 1 : range.end)
        var replacement: [Run] = []
        func push(_ run: Run) {
            guard !run.range.isEmpty else { return }
            if let tail = replacement.last, tail.state == run.state, tail.range.end == run.range.start {
                replacement[replacement.count - 1].range.end = run.range.end
            } else {
                replacement.append(run)
            }
        }
        for run in runs[first...last] where run.range.start < range.start {
            push(Run(range: PageRange(start: run.range.start, end: min(run.range.end, range.start)), state: run.state))
        }
        push(Run(range: range, state: state))
        for run in runs[first...last] where run.range.end > range.end {
            push(Run(range: PageRange(start: max(run.range.start, range.end), end: run.range.end), state: run.state))
        }
        return (first, last, replacement)
    }
}
