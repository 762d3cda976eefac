import APITypes

/// A VM's guest-physical memory drawn to scale as one bar: the boot region,
/// private runs and shared runs in distinct colours, with a legend, the address of
/// each run boundary on the first of two rows with room for it (never overlapping;
/// the picture counts any left out), totals and percentages, and when it was drawn. Sizes in binary units, exact bytes in `data-bytes`. Pure: text in, text out.
///
/// Runs narrower than a pixel are merged into the pixel they share (drawn in the
/// colour holding most of its bytes), and the picture says how many were merged,
/// so a VM with thousands of runs still draws quickly and legibly.
public struct MemoryMapSVG: Sendable {
    public static let privateColor = "#6a3d9a"
    public static let sharedColor = "#ff7f00"
    public static let bootColor = "#b0b0b0"

    /// Pixels of the bar.
    public var barWidth = 800
    public var barHeight = 28
    let margin = 16

    public init() {}

    /// One drawn rectangle: where, how wide, which colour, and the bytes it stands for.
    public struct Segment: Sendable, Equatable {
        public var x: Int
        public var width: Int
        public var kind: Kind
        public var start: UInt64
        public var end: UInt64
    }

    public enum Kind: String, Sendable, Equatable {
        case boot, `private`, shared

        var color: String {
            switch self {
            case .boot: MemoryMapSVG.bootColor
            case .private: MemoryMapSVG.privateColor
            case .shared: MemoryMapSVG.sharedColor
            }
        }
    }

    /// The runs of [from, to), boot region included, in address order.
    static func runs(of memory: VMMemory, from: UInt64, to: UInt64) -> [(start: UInt64, end: UInt64, kind: Kind)] {
        var all: [(UInt64, UInt64, Kind)] = [(memory.bootRegion.start, memory.bootRegion.end, .boot)]
        all += memory.runs.map { ($0.start, $0.end, $0.state == "shared" ? Kind.shared : .private) }
        return all.compactMap { start, end, kind in
            let clippedStart = max(start, from), clippedEnd = min(end, to)
            return clippedStart < clippedEnd ? (clippedStart, clippedEnd, kind) : nil
        }
    }

    /// The bar's rectangles, built pixel column by pixel column: each column takes the
    /// kind holding most of its bytes, and equal neighbours join. Widths are whole
    /// pixels adding up to `barWidth` exactly. Also returns how many runs were
    /// narrower than a pixel (drawn merged into a neighbour's column).
    func segments(_ runs: [(start: UInt64, end: UInt64, kind: Kind)], from: UInt64, to: UInt64) -> (
        segments: [Segment], merged: Int
    ) {
        guard to > from, !runs.isEmpty, barWidth > 0 else { return ([], 0) }
        let span = Double(to - from)
        func boundary(_ column: Int) -> UInt64 {
            column >= barWidth ? to : from + UInt64(Double(column) / Double(barWidth) * span)
        }
        var segments: [Segment] = []
        var index = 0
        for column in 0..<barWidth {
            let start = boundary(column), end = boundary(column + 1)
            var bytes: [Kind: UInt64] = [:]
            /// Where each kind's first run in this column begins: a new segment is labelled with a real run boundary.
            var firstStart: [Kind: UInt64] = [:]
            while index < runs.count, runs[index].end <= start { index += 1 }
            var probe = index
            while probe < runs.count, runs[probe].start < end {
                if runs[probe].end > start {
                    bytes[runs[probe].kind, default: 0] += min(runs[probe].end, end) - max(runs[probe].start, start)
                    if firstStart[runs[probe].kind] == nil { firstStart[runs[probe].kind] = runs[probe].start }
                }
                probe += 1
            }
            // A column between runs (a gap in the map) keeps its neighbour's kind.
            let kind =
                bytes.max { $0.value == $1.value ? $0.key.rawValue > $1.key.rawValue : $0.value < $1.value }?.key
                ?? segments.last?.kind ?? .private
            if let last = segments.last, last.kind == kind {
                segments[segments.count - 1].width += 1
                segments[segments.count - 1].end = end
            } else {
                // The run may begin in the previous column (which another kind won): label its real start.
                let boundary = max(firstStart[kind] ?? start, segments.last.map { $0.start + 1 } ?? from)
                if !segments.isEmpty { segments[segments.count - 1].end = boundary }
                segments.append(Segment(x: column, width: 1, kind: kind, start: boundary, end: end))
            }
        }
        let merged = runs.filter { Double($0.end - $0.start) / span * Double(barWidth) < 1 }.count
        return (segments, merged)
    }

    /// The whole picture. `drawnAt` is shown as given (the caller formats the time).
    public func render(_ memory: VMMemory, name: String, drawnAt: String, from: UInt64? = nil, to: UInt64? = nil)
        -> String
    {
        let ramEnd = max(memory.dataRamEnd, memory.bootRegion.end)
        let lower = min(from ?? 0, ramEnd), upper = max(min(to ?? ramEnd, ramEnd), lower)
        let runs = Self.runs(of: memory, from: lower, to: upper)
        let (segments, merged) = self.segments(runs, from: lower, to: upper)
        var bytes: [Kind: UInt64] = [:]
        for run in runs { bytes[run.kind, default: 0] += run.end - run.start }
        let total = max(upper - lower, 1)
        let width = barWidth + 2 * margin
        let barY = 40, height = 184
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
            font-family="sans-serif" font-size="12">
            <title>Memory of VM \(Self.escape(name)) (id \(memory.vmId))</title>
            <rect width="\(width)" height="\(height)" fill="#ffffff"/>
            <text x="\(margin)" y="20" font-size="14" font-weight="bold">\(Self.escape(name)) \
            (VM \(memory.vmId)): \(Self.hex(lower)) – \(Self.hex(upper))</text>

            """
        for segment in segments {
            svg += """
                <rect class="\(segment.kind.rawValue)" x="\(margin + segment.x)" y="\(barY)" width="\(segment.width)" \
                height="\(barHeight)" fill="\(segment.kind.color)" data-start="\(Self.hex(segment.start))" \
                data-end="\(Self.hex(segment.end))"/>

                """
        }
        // An address at every boundary, left to right, on the first of two rows with room for it.
        let boundaries =
            segments.indices.filter { $0 == 0 || segments[$0].kind != segments[$0 - 1].kind }
            .map { (x: margin + segments[$0].x, address: segments[$0].start) }
            + (segments.isEmpty ? [] : [(x: margin + barWidth, address: upper)])
        let labels = Self.placeLabels(boundaries, rightEdge: Double(width - 4))
        for label in labels {
            let baseline = barY + barHeight + 14 + 13 * label.row
            svg +=
                "<line x1=\"\(label.x)\" y1=\"\(barY + barHeight)\" x2=\"\(label.x)\" y2=\"\(baseline - 9)\" stroke=\"#888\"/>"
            svg +=
                "<text class=\"boundary\" x=\"\(label.x)\" y=\"\(baseline)\" font-size=\"10\"\(label.anchorEnd ? " text-anchor=\"end\"" : "")>"
                + "\(Self.hex(label.address))</text>\n"
        }
        let unlabelled = boundaries.count - labels.count
        let legendY = barY + barHeight + 52
        var legendX = margin
        // Percentages of data RAM in view, as everywhere else (the CLI's bar, the status page).
        let data = max((bytes[.private] ?? 0) + (bytes[.shared] ?? 0), 1)
        for kind in [Kind.boot, .private, .shared] {
            let amount = bytes[kind] ?? 0
            let label =
                kind == .boot
                ? "boot region: \(humanBytes(amount)) (not data RAM)"
                : "\(kind.rawValue): \(humanBytes(amount)) (\(Self.percent(Double(amount) / Double(data) * 100)) of data RAM)"
            svg += """
                <rect x="\(legendX)" y="\(legendY - 10)" width="12" height="12" fill="\(kind.color)"/>\
                <text class="total-\(kind.rawValue)" x="\(legendX + 16)" y="\(legendY)" data-bytes="\(amount)">\(label)</text>

                """
            legendX += 270
        }
        // Totals, then what the bar could not show one by one (when anything), then when: one line each, so none runs off the picture.
        let notes = [
            merged > 0 ? "\(merged) \(merged == 1 ? "run" : "runs") narrower than a pixel merged" : nil,
            unlabelled > 0
                ? "\(unlabelled) \(unlabelled == 1 ? "boundary" : "boundaries") too close to label (zoom in with from and to)"
                : nil,
        ].compactMap { $0 }
        let lines = [
            "\(humanBytes(total)) shown, \(runs.count { $0.kind != .boot }) runs of data RAM in \(segments.count) segments",
            notes.joined(separator: "; "), "drawn \(Self.escape(drawnAt))",
        ].filter { !$0.isEmpty }
        for (index, line) in lines.enumerated() {
            svg +=
                "<text x=\"\(margin)\" y=\"\(legendY + 26 + 14 * index)\" font-size=\"10\" fill=\"#444444\"\(index == 0 ? " data-bytes=\"\(total)\"" : "")>\(line)</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    /// One boundary's address label: where it stands, which of the two rows, and which way it runs from `x`.
    struct Label: Equatable {
        var x: Int
        var address: UInt64
        var row: Int
        var anchorEnd: Bool
    }

    /// Labels for `boundaries` (in x order), each on the first row where it clears the
    /// previous label by 4 px; a label that would pass `rightEdge` runs leftwards from
    /// its boundary. A boundary with room on neither row goes unlabelled.
    static func placeLabels(_ boundaries: [(x: Int, address: UInt64)], rightEdge: Double) -> [Label] {
        var rowEnds = [-Double.infinity, -Double.infinity]
        var labels: [Label] = []
        for boundary in boundaries {
            let width = Axis.textWidth(hex(boundary.address), fontSize: 10)
            let anchorEnd = Double(boundary.x) + width > rightEdge
            let left = anchorEnd ? Double(boundary.x) - width : Double(boundary.x)
            guard let row = rowEnds.indices.first(where: { left >= rowEnds[$0] + 4 }) else { continue }
            rowEnds[row] = left + width
            labels.append(Label(x: boundary.x, address: boundary.address, row: row, anchorEnd: anchorEnd))
        }
        return labels
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    static func percent(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }

    /// Text for XML character data and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // XML 1.0 forbids most control characters even escaped, and the non-characters U+FFFE and U+FFFF.
                let forbidden =
                    (scalar.value < 0x20 && scalar != "\t" && scalar != "\n") || scalar.value == 0xFFFE
                    || scalar.value == 0xFFFF
                if forbidden { out += "\u{FFFD}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }
}
