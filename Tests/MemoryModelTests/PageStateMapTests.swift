import TestSupport
import Testing

@testable import MemoryModel

@Suite struct PageStateMapTests {
    let page = PageRange.pageSize
    let bounds = PageRange(start: 0x20_0000, end: 0x20_0000 + 64 * 4096)

    @Test func startsAsOneRunWithTotals() {
        let map = PageStateMap(bounds: bounds, initial: .private)
        #expect(map.runs.count == 1)
        #expect(map.privateBytes == bounds.size && map.sharedBytes == 0)
        #expect(map.state(at: bounds.start) == .private && map.state(at: bounds.end) == nil)
        #expect(PageStateMap(bounds: bounds, initial: .shared).sharedBytes == bounds.size)
    }

    @Test func splitsAndCoalesces() {
        var map = PageStateMap(bounds: bounds, initial: .private)
        let middle = PageRange(start: bounds.start + 4 * page, size: 2 * page)
        #expect(map.set(middle, to: .shared) == 2 * page)
        #expect(map.runs.map(\.state) == [.private, .shared, .private])
        #expect(map.uniformState(of: middle) == .shared)
        #expect(map.uniformState(of: PageRange(start: bounds.start, size: 5 * page)) == nil)
        #expect(map.set(middle, to: .shared) == 0)  // no-op
        #expect(map.set(PageRange(start: middle.start + page, size: page), to: .private) == page)
        #expect(map.runs.count == 3)
        #expect(map.set(PageRange(start: middle.start, size: page), to: .private) == page)
        #expect(map.runs.count == 1 && map.privateBytes == bounds.size)
        // Edges of the bounds.
        map.set(PageRange(start: bounds.start, size: page), to: .shared)
        map.set(PageRange(start: bounds.end - page, size: page), to: .shared)
        #expect(map.runs.map(\.state) == [.shared, .private, .shared])
        map.set(bounds, to: .shared)
        #expect(map.runs.count == 1 && map.sharedBytes == bounds.size)
    }

    @Test func runsOverlappingAWindowAreWhole() {
        var map = PageStateMap(bounds: bounds, initial: .private)
        map.set(PageRange(start: bounds.start + 10 * page, size: page), to: .shared)
        let window = PageRange(start: bounds.start + 9 * page, size: 3 * page)
        let runs = map.runs(overlapping: window)
        #expect(runs.count == 3)
        #expect(runs.first?.range.start == bounds.start && runs.last?.range.end == bounds.end)
        #expect(map.bytes(in: window, state: .shared) == page)
    }

    /// Random conversions against a naive one-entry-per-page model must agree everywhere.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func agreesWithNaiveModel(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        let pages = 64
        var naive = [PageState](repeating: seed % 2 == 0 ? .private : .shared, count: pages)
        var map = PageStateMap(bounds: bounds, initial: naive[0])
        for _ in 0..<400 {
            let first = Int.random(in: 0..<pages, using: &rng)
            let count = Int.random(in: 1...min(8, pages - first), using: &rng)
            let state: PageState = Bool.random(using: &rng) ? .private : .shared
            let expectedChange = (first..<first + count).filter { naive[$0] != state }.count
            for index in first..<first + count { naive[index] = state }
            let range = PageRange(start: bounds.start + UInt64(first) * page, size: UInt64(count) * page)
            #expect(map.set(range, to: state) == UInt64(expectedChange) * page)

            for index in 0..<pages {
                #expect(map.state(at: bounds.start + UInt64(index) * page + 7) == naive[index])
            }
            #expect(map.privateBytes == UInt64(naive.filter { $0 == .private }.count) * page)
            #expect(map.sharedBytes == UInt64(naive.filter { $0 == .shared }.count) * page)
            // Invariants: runs cover the bounds in order and are maximal.
            #expect(map.runs.first?.range.start == bounds.start && map.runs.last?.range.end == bounds.end)
            for (a, b) in zip(map.runs, map.runs.dropFirst()) {
                #expect(a.range.end == b.range.start && a.state != b.state)
            }
            let probe = Int.random(in: 0..<pages, using: &rng)
            let probeCount = Int.random(in: 1...(pages - probe), using: &rng)
            let slice = naive[probe..<probe + probeCount]
            let uniform: PageState? = Set(slice).count == 1 ? slice.first : nil
            #expect(
                map.uniformState(
                    of: PageRange(start: bounds.start + UInt64(probe) * page, size: UInt64(probeCount) * page))
                    == uniform)
        }
    }

    /// Out-of-range input is refused without a trap: one VM's bad fault must never take the agent down.
    @Test func outOfRangeInputNeverTraps() {
        var map = PageStateMap(bounds: PageRange(start: 0x20_0000, size: 16 * 4096), initial: .private)
        let before = map
        #expect(map.set(PageRange(start: 0x10_0000, size: 4096), to: .shared) == 0)  // below data RAM
        #expect(map.set(PageRange(start: 0x20_0800, size: 4096), to: .shared) == 0)  // not page aligned
        #expect(map.set(PageRange(start: UInt64.max - 4095, size: 8192), to: .shared) == 0)  // size past 2^64
        #expect(map == before)
        #expect(PageRange(start: UInt64.max - 10, size: 100).end == UInt64.max)
        #expect(PageRange(start: 10, end: 5).isEmpty)
        #expect(PageRange.page(containing: UInt64.max).end == UInt64.max)
        let odd = PageStateMap(bounds: PageRange(start: 0x20_0010, end: 0x20_3010), initial: .shared)
        #expect(odd.bounds == PageRange(start: 0x20_1000, end: 0x20_3000))
    }

    @Test func aMapRebuiltFromReportedRunsIgnoresRunsOutsideItsBounds() {
        let bounds = PageRange(start: 0x20_0000, end: 0x40_0000)
        let map = PageStateMap(
            bounds: bounds, initial: .private,
            runs: [
                (0x20_0000, 0x21_0000, .shared), (0x10_0000, 0x21_0000, .shared), (0x3F_F000, 0x50_0000, .shared),
                (0x30_0000, 0x30_0000, .shared),
            ])
        #expect(map.sharedBytes == 0x1_0000)
        #expect(
            map.state(at: 0x20_0000) == .shared && map.state(at: 0x21_0000) == .private
                && map.state(at: 0x3F_F000) == .private)
    }
}
