import Testing

@testable import Pictures

/// The history chart: a step line drawn to scale, marks where conversions and denials were.
struct HistorySVGTests {
    func input(_ columns: [HistorySVG.Column], initial: UInt64 = 0, span: UInt64 = 60_000_000_000) -> HistorySVG.Input {
        HistorySVG.Input(
            vmID: 3, name: "db<1>", startNanos: 1_000_000_000, endNanos: 1_000_000_000 + span, dataRAMBytes: 64 << 20,
            initialSharedBytes: initial, columns: columns, drawnAt: "2026-11-27 10:00:00 UTC")
    }

    @Test func stepsAreToScaleAndMarksAreCounted() {
        let svg = HistorySVG.render(
            input([
                HistorySVG.Column(index: 150, sharedDelta: 32 << 20, applied: 8, denied: 0),
                HistorySVG.Column(index: 450, sharedDelta: -(16 << 20), applied: 4, denied: 2),
                HistorySVG.Column(index: 500, sharedDelta: 0, applied: 0, denied: 1),
            ]))
        // Plot: x from 70 over 600 px, y from 212 (0 bytes) up 160 px to 52 (32 MiB, the peak's round top).
        #expect(svg.contains("M70,212.0 H221.0 V52.0 H521.0 V132.0 H670"), "the peak at the top, half of it at 450 px")
        #expect(svg.components(separatedBy: "fill=\"#c00\"").count - 1 == 2, "one denial mark per column with denials")
        #expect(
            svg.contains(
                "12 applied (ticks above), 3 denied (red marks below); now 16.0 MiB shared of 64.0 MiB data RAM"))
        for label in ["0 MiB", "8 MiB", "16 MiB", "24 MiB", "32 MiB", "0 s", "15 s", "30 s", "45 s", "60 s"] {
            #expect(svg.contains(">\(label)<"), "axis label \(label)")
        }
        #expect(svg.contains("db&lt;1&gt;") && !svg.contains("db<1>"), "names are escaped")
    }

    /// The finding: a VM that peaked at one page drew as a flat line against its 30 MiB.
    @Test func aSmallPeakFillsThePlot() {
        let svg = HistorySVG.render(input([HistorySVG.Column(index: 300, sharedDelta: 4096, applied: 1, denied: 0)]))
        #expect(svg.contains("M70,212.0 H371.0 V52.0 H670"), "one page shared reaches the top")
        for label in ["0 KiB", "1 KiB", "2 KiB", "3 KiB", "4 KiB"] {
            #expect(svg.contains(">\(label)<"), "axis label \(label)")
        }
    }

    @Test func aVMThatStartedSharedAndColumnsOutsideThePlotStayInIt() {
        let svg = HistorySVG.render(
            input([HistorySVG.Column(index: 9999, sharedDelta: 1 << 30, applied: 1, denied: 0)], initial: 64 << 20))
        #expect(svg.contains("M70,52.0 H670"), "starts at the top, ignores a column beyond the plot")
    }

    /// The finding: a 2 ms history labelled `0 s, 1 ms, 1 ms, 2 ms, 2 ms`.
    @Test func timeTicksAreDistinctAndRound() {
        for span: UInt64 in [
            1, 999, 2_300_000, 2_000_000, 999_999_999, 1_000_000_000, 90_000_000_000, 150_000_000_000,
            3_600_000_000_000, 7_300_000_000_000, 200_000_000_000_000, UInt64.max / 2,
        ] {
            let ticks = Axis.timeTicks(span: span)
            #expect(ticks.count >= 2 && ticks.count <= 6, "span \(span): \(ticks.map(\.label))")
            #expect(Set(ticks.map(\.label)).count == ticks.count, "span \(span): labels repeat: \(ticks.map(\.label))")
            #expect(ticks.allSatisfy { $0.value <= span })
            let steps = zip(ticks, ticks.dropFirst()).map { $1.value - $0.value }
            #expect(Set(steps).count == 1, "span \(span): uneven steps")
        }
        #expect(Axis.timeTicks(span: 2_300_000).map(\.label) == ["0 ms", "0.5 ms", "1 ms", "1.5 ms", "2 ms"])
        #expect(
            Axis.timeTicks(span: 150_000_000_000).map(\.label) == [
                "0 min", "0.5 min", "1 min", "1.5 min", "2 min", "2.5 min",
            ])
    }

    @Test func byteTicksCoverThePeakInPowerOfTwoSteps() {
        #expect(Axis.byteTicks(maximum: 0).ticks.map(\.label) == ["0 KiB", "1 KiB", "2 KiB", "3 KiB", "4 KiB"])
        #expect(Axis.byteTicks(maximum: 12 << 10).ticks.map(\.label) == ["0 KiB", "4 KiB", "8 KiB", "12 KiB"])
        #expect(
            Axis.byteTicks(maximum: 30 << 20).ticks.map(\.label) == ["0 MiB", "8 MiB", "16 MiB", "24 MiB", "32 MiB"])
        #expect(Axis.byteTicks(maximum: 1_536 << 10).ticks.map(\.label) == ["0 MiB", "0.5 MiB", "1 MiB", "1.5 MiB"])
        for maximum: UInt64 in [1, 4097, 123_456_789, 1 << 40, UInt64.max / 4] {
            let (top, ticks) = Axis.byteTicks(maximum: maximum)
            #expect(top >= maximum && ticks.last?.value == top && ticks.count <= 5)
            #expect(Set(ticks.map(\.label)).count == ticks.count, "\(ticks.map(\.label))")
        }
    }
}
