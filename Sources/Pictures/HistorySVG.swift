import Foundation

/// A VM's shared bytes over its lifetime as a step chart drawn to scale from its
/// records: time across (seconds from the VM's creation), bytes up (0 to its data
/// RAM), applied conversions as ticks above the plot, denials as red marks below
/// it. The store hands over one column per pixel (what changed in it), so a VM
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
            self.index = index; self.sharedDelta = sharedDelta; self.applied = applied; self.denied = denied
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
        public init(vmID: Int64, name: String, startNanos: UInt64, endNanos: UInt64, dataRAMBytes: UInt64, initialSharedBytes: UInt64,
                    columns: [Column], drawnAt: String) {
            self.vmID = vmID; self.name = name; self.startNanos = startNanos; self.endNanos = endNanos; self.dataRAMBytes = dataRAMBytes
            self.initialSharedBytes = initialSharedBytes; self.columns = columns; self.drawnAt = drawnAt
        }
    }

    /// Pixel columns of the plot: the store buckets records by this.
    public static let plotWidth = 600
    static let plotHeight = 160
    static let left = 70, top = 34, bottom = 44, right = 20

    public static func render(_ input: Input) -> String {
        let width = left + plotWidth + right, height = top + plotHeight + bottom
        let span = max(input.endNanos &- input.startNanos, 1)
        let capacity = max(input.dataRAMBytes, 1)
        func y(_ bytes: Int64) -> Double {
            let clamped = min(max(Double(bytes), 0), Double(capacity))
            return Double(top + plotHeight) - clamped / Double(capacity) * Double(plotHeight)
        }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            font-family="sans-serif" font-size="11" role="img" aria-label="shared bytes of VM \(input.vmID) over time">
            <title>Shared bytes of VM \(input.vmID) (\(MemoryMapSVG.escape(input.name))) over its lifetime</title>
            <rect x="\(left)" y="\(top)" width="\(plotWidth)" height="\(plotHeight)" fill="#fff" stroke="#999"/>
            <text x="\(left)" y="14" font-size="12">VM \(input.vmID) \(MemoryMapSVG.escape(input.name)): shared bytes over time \
            (drawn \(MemoryMapSVG.escape(input.drawnAt)))</text>

            """
        // Axes in real units: bytes up (MiB), time across (from the VM's creation).
        for step in 0...4 {
            let bytes = capacity * UInt64(step) / 4
            let level = y(Int64(bytes))
            svg += "<line x1=\"\(left - 4)\" y1=\"\(f(level))\" x2=\"\(left + plotWidth)\" y2=\"\(f(level))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(f(level + 4))\" text-anchor=\"end\">\(mebibytes(bytes))</text>\n"
        }
        for step in 0...4 {
            let x = Double(left) + Double(plotWidth) * Double(step) / 4
            svg += "<line x1=\"\(f(x))\" y1=\"\(top + plotHeight)\" x2=\"\(f(x))\" y2=\"\(top + plotHeight + 4)\" stroke=\"#999\"/>"
            svg += "<text x=\"\(f(x))\" y=\"\(top + plotHeight + 16)\" text-anchor=\"middle\">\(duration(span * UInt64(step) / 4))</text>\n"
        }
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\" fill=\"#555\">time since the VM was created</text>\n"
        // The step line: flat within a column, a step at its end.
        var level = Int64(input.initialSharedBytes)
        var path = "M\(left),\(f(y(level)))"
        var ticks = "", denials = ""
        var applied = 0, denied = 0
        for column in input.columns.sorted(by: { $0.index < $1.index }) where column.index >= 0 && column.index < plotWidth {
            let x = Double(left + column.index) + 1
            if column.sharedDelta != 0 {
                level += column.sharedDelta
                path += " H\(f(x)) V\(f(y(level)))"
            }
            if column.applied > 0 {
                ticks += "<line x1=\"\(f(x))\" y1=\"\(top - 8)\" x2=\"\(f(x))\" y2=\"\(top - 2)\" stroke=\"\(MemoryMapSVG.sharedColor)\"/>"
                applied += column.applied
            }
            if column.denied > 0 {
                denials += "<path d=\"M\(f(x)),\(top + plotHeight + 22) l-3,6 h6 z\" fill=\"#c00\"/>"
                denied += column.denied
            }
        }
        path += " H\(left + plotWidth)"
        svg += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(MemoryMapSVG.sharedColor)\" stroke-width=\"2\"/>\n"
        svg += ticks + "\n" + denials + "\n"
        svg += "<text x=\"\(left + plotWidth)\" y=\"14\" text-anchor=\"end\" fill=\"#555\">\(applied) applied (ticks above), "
            + "\(denied) denied (red marks below); now \(mebibytes(UInt64(max(level, 0)))) shared</text>\n"
        return svg + "</svg>\n"
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func mebibytes(_ bytes: UInt64) -> String {
        let mib = Double(bytes) / 1_048_576
        return mib == mib.rounded() ? "\(Int(mib)) MiB" : String(format: "%.1f MiB", mib)
    }

    static func duration(_ nanos: UInt64) -> String {
        let seconds = Double(nanos) / 1e9
        switch seconds {
        case 0: return "0 s"
        case ..<1: return String(format: "%.0f ms", seconds * 1000)
        case ..<120: return String(format: "%.1f s", seconds)
        case ..<7200: return String(format: "%.1f min", seconds / 60)
        default: return String(format: "%.1f h", seconds / 3600)
        }
    }
}
