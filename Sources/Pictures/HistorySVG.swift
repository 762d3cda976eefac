import APITypes
import Foundation

/// A VM's shared bytes over its lifetime as a step chart drawn to scale from its
/// records: time across (from the VM's creation), bytes up (0 to a round value
/// above its peak, so a small history is not a flat line), applied conversions as
/// ticks above the plot, denials as red marks below it. The store hands over one column per pixel (what changed in it), so a VM
/// with a million conversions draws as fast as one with ten. Pure.
public struct HistorySVG: Sendable {
    /// What happened in one pixel column of the time axis.
    public struct Column: Sendable, Equatable {
        public var index: Int
        /// Net change of shared bytes by the conversions applied in it.
        public var sharedDelta: Int64
        public var applied: Int
        public var denied: Int
        public init(index: Int, sharedDelta: Int64, applied: Int, denied: Int) {
            self.index = index
            self.sharedDelta = sharedDelta
            self.applied = applied
            self.denied = denied
        }
    }

    public struct Input: Sendable {
        public var vmID: Int64
        public var name: String
        public var startNanos: UInt64
        /// The VM's end, or now while it runs.
        public var endNanos: UInt64
        public var dataRAMBytes: UInt64
        /// Shared bytes at the start of what the records hold.
        public var initialSharedBytes: UInt64
        public var columns: [Column]
        public var drawnAt: String
        public init(
            vmID: Int64, name: String, startNanos: UInt64, endNanos: UInt64, dataRAMBytes: UInt64,
            initialSharedBytes: UInt64,
            columns: [Column], drawnAt: String
        ) {
            self.vmID = vmID
            self.name = name
            self.startNanos = startNanos
            self.endNanos = endNanos
            self.dataRAMBytes = dataRAMBytes
            self.initialSharedBytes = initialSharedBytes
            self.columns = columns
            self.drawnAt = drawnAt
        }
    }

    /// Pixel columns of the plot: the store buckets records by this.
    public static let plotWidth = 600
    static let plotHeight = 160
    static let left = 70, top = 52, bottom = 46, right = 30

    /// Where the step line goes: the shared bytes after each column, in column order
    /// (columns outside the plot are ignored), and the highest level reached.
    static func levels(_ input: Input) -> (steps: [(column: Column, level: Int64)], peak: UInt64) {
        var level = Int64(clamping: input.initialSharedBytes)
        var peak = max(level, 0)
        var steps: [(Column, Int64)] = []
        for column in input.columns.sorted(by: { $0.index < $1.index })
        where column.index >= 0 && column.index < plotWidth {
            level = level.addingReportingOverflow(column.sharedDelta).partialValue
            peak = max(peak, level)
            steps.append((column, level))
        }
        return (steps, UInt64(peak))
    }

    public static func render(_ input: Input) -> String {
        let width = left + plotWidth + right, height = top + plotHeight + bottom
        let span = max(input.endNanos &- input.startNanos, 1)
        let (steps, peak) = levels(input)
        // The scale follows the data: a VM that peaked at one page is drawn against a page, not its RAM.
        let (scaleTop, byteTicks) = Axis.byteTicks(maximum: peak)
        func y(_ bytes: Int64) -> Double {
            let clamped = min(max(Double(bytes), 0), Double(scaleTop))
            return Double(top + plotHeight) - clamped / Double(scaleTop) * Double(plotHeight)
        }
        let name = MemoryMapSVG.escape(Axis.shortened(input.name, to: 24))
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            font-family="sans-serif" font-size="11" role="img" aria-label="shared bytes of VM \(input.vmID) over time">
            <title>Shared bytes of VM \(input.vmID) (\(MemoryMapSVG.escape(input.name))) over its lifetime</title>
            <rect width="\(width)" height="\(height)" fill="#fff"/>
            <rect class="plot" x="\(left)" y="\(top)" width="\(plotWidth)" height="\(plotHeight)" fill="#fff" stroke="#999"/>
            <text class="title" x="10" y="16" font-size="12" font-weight="bold">VM \(input.vmID) \(name): shared memory over time</text>

            """
        for tick in byteTicks {
            let level = y(Int64(clamping: tick.value))
            svg +=
                "<line x1=\"\(left - 4)\" y1=\"\(f(level))\" x2=\"\(left + plotWidth)\" y2=\"\(f(level))\" stroke=\"#eee\"/>"
            svg +=
                "<text class=\"y-tick\" x=\"\(left - 6)\" y=\"\(f(level + 4))\" text-anchor=\"end\">\(tick.label)</text>\n"
        }
        for tick in Axis.timeTicks(span: span) {
            let x = Double(left) + Double(plotWidth) * Double(tick.value) / Double(span)
            svg +=
                "<line x1=\"\(f(x))\" y1=\"\(top + plotHeight)\" x2=\"\(f(x))\" y2=\"\(top + plotHeight + 4)\" stroke=\"#999\"/>"
            svg +=
                "<text class=\"x-tick\" x=\"\(f(x))\" y=\"\(top + plotHeight + 16)\" text-anchor=\"middle\">\(tick.label)</text>\n"
        }
        svg +=
            "<text x=\"\(left + plotWidth / 2 - 60)\" y=\"\(height - 6)\" text-anchor=\"middle\" fill=\"#555\">time since the VM was created</text>\n"
        svg +=
            "<text x=\"\(width - 10)\" y=\"\(height - 6)\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">drawn \(MemoryMapSVG.escape(input.drawnAt))</text>\n"
        // The step line: flat within a column, a step at its end.
        var level = Int64(clamping: input.initialSharedBytes)
        var path = "M\(left),\(f(y(level)))"
        var ticks = "", denials = ""
        var applied = 0, denied = 0
        for (column, after) in steps {
            let x = Double(left + column.index) + 1
            if after != level {
                level = after
                path += " H\(f(x)) V\(f(y(level)))"
            }
            if column.applied > 0 {
                ticks +=
                    "<line x1=\"\(f(x))\" y1=\"\(top - 9)\" x2=\"\(f(x))\" y2=\"\(top - 3)\" stroke=\"\(MemoryMapSVG.sharedColor)\"/>"
                applied += column.applied
            }
            if column.denied > 0 {
                denials += "<path d=\"M\(f(x)),\(top + plotHeight + 22) l-3,6 h6 z\" fill=\"#c00\"/>"
                denied += column.denied
            }
        }
        path += " H\(left + plotWidth)"
        svg +=
            "<path class=\"step\" d=\"\(path)\" fill=\"none\" stroke=\"\(MemoryMapSVG.sharedColor)\" stroke-width=\"2\"/>\n"
        svg += ticks + "\n" + denials + "\n"
        svg +=
            "<text class=\"summary\" x=\"10\" y=\"34\" fill=\"#555\">\(applied) applied (ticks above), \(denied) denied (red marks below); "
            + "now \(humanBytes(UInt64(max(level, 0)))) shared of \(humanBytes(input.dataRAMBytes)) data RAM</text>\n"
        return svg + "</svg>\n"
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }
}
