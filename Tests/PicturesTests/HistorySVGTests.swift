import Testing
@testable import Pictures

/// The history chart: a step line drawn to scale, marks where conversions and denials were.
struct HistorySVGTests {
    func input(_ columns: [HistorySVG.Column], initial: UInt64 = 0) -> HistorySVG.Input {
        HistorySVG.Input(vmID: 3, name: "db<1>", startNanos: 1_000_000_000, endNanos: 61_000_000_000, dataRAMBytes: 64 << 20,
                         initialSharedBytes: initial, columns: columns, drawnAt: "2026-11-27 10:00:00 UTC")
    }

    @Test func stepsAreToScaleAndMarksAreCounted() {
        let svg = HistorySVG.render(input([
            HistorySVG.Column(index: 150, sharedDelta: 32 << 20, applied: 8, denied: 0),
            HistorySVG.Column(index: 450, sharedDelta: -(16 << 20), applied: 4, denied: 2),
            HistorySVG.Column(index: 500, sharedDelta: 0, applied: 0, denied: 1),
        ]))
        // Plot: x from 70 over 600 px, y from 194 (0 bytes) up 160 px to 34 (64 MiB).
        #expect(svg.contains("M70,194.0 H221.0 V114.0 H521.0 V154.0 H670"), "half the RAM shared at 150 px, a quarter at 450 px")
        #expect(svg.components(separatedBy: "fill=\"#c00\"").count - 1 == 2, "one denial mark per column with denials")
        #expect(svg.contains("12 applied (ticks above), 3 denied (red marks below); now 16 MiB shared"))
        for label in ["0 MiB", "16 MiB", "32 MiB", "64 MiB", "0 s", "30.0 s", "60.0 s"] {
            #expect(svg.contains(">\(label)<"), "axis label \(label)")
        }
        #expect(svg.contains("db&lt;1&gt;") && !svg.contains("db<1>"), "names are escaped")
    }

    @Test func aVMThatStartedSharedAndColumnsOutsideThePlotStayInIt() {
        let svg = HistorySVG.render(input([HistorySVG.Column(index: 9999, sharedDelta: 1 << 30, applied: 1, denied: 0)], initial: 64 << 20))
        #expect(svg.contains("M70,34.0 H670"), "starts at the top, ignores a column beyond the plot")
        #expect(HistorySVG.duration(0) == "0 s" && HistorySVG.duration(5_000_000) == "5 ms" && HistorySVG.duration(7_200_000_000_000) == "2.0 h")
    }
}
