import APITypes

/// A VM's guest-physical memory as one terminal bar, drawn to scale: the boot
/// region, private runs and shared runs, with totals; zoomed to any range of
/// addresses, where it also lists the runs in view. Pure.
public enum MemoryBar {
    public static let bootCell: Character = "#"
    public static let privateCell: Character = "="
    public static let sharedCell: Character = "."
    /// Runs listed one per line under the bar at most; past this, a zoom is suggested.
    public static let listedRuns = 16

    /// The range drawn: [from, to) clipped to the VM's memory (all of it by default).
    public static func range(_ memory: VMMemory, from: UInt64? = nil, to: UInt64? = nil) -> (from: UInt64, to: UInt64) {
        let end = max(memory.dataRamEnd, memory.bootRegion.end)
        let lower = min(from ?? 0, end)
        return (lower, max(min(to ?? end, end), lower))
    }

    /// Every run, the boot region included, clipped to [from, to), in address order.
    static func runs(_ memory: VMMemory, from: UInt64, to: UInt64) -> [MemoryRun] {
        let all = [MemoryRun(start: memory.bootRegion.start, end: memory.bootRegion.end, state: "boot")] + memory.runs
        return all.sorted { $0.start < $1.start }.compactMap { run in
            let start = max(run.start, from), end = min(run.end, to)
            return start < end ? MemoryRun(start: start, end: end, state: run.state) : nil
        }
    }

    /// The bar's cells: each covers `(to - from) / width` bytes and shows the state holding most of it.
    public static func cells(_ memory: VMMemory, width: Int, from: UInt64? = nil, to: UInt64? = nil) -> [Character] {
        let width = max(width, 1)
        let (lower, upper) = range(memory, from: from, to: to)
        guard upper > lower else { return [] }
        let runs = runs(memory, from: lower, to: upper)
        let span = Double(upper - lower)
        return (0..<width).map { cell in
            let start = lower + UInt64(span * Double(cell) / Double(width))
            let end = lower + UInt64(span * Double(cell + 1) / Double(width))
            var bytes: [String: UInt64] = [:]
            for run in runs where run.end > start && run.start < end {
                bytes[run.state, default: 0] += min(run.end, end) - max(run.start, start)
            }
            switch bytes.max(by: { $0.value < $1.value })?.key {
            case "boot": return bootCell
            case "shared": return sharedCell
            default: return privateCell
            }
        }
    }

    public static func render(_ memory: VMMemory, host: String, width: Int = 64, from: UInt64? = nil, to: UInt64? = nil)
        -> String
    {
        let (lower, upper) = range(memory, from: from, to: to)
        let zoomed = lower > 0 || upper < max(memory.dataRamEnd, memory.bootRegion.end)
        let bar = String(cells(memory, width: width, from: lower, to: upper))
        let inView = runs(memory, from: lower, to: upper)
        var bytes: [String: UInt64] = [:]
        for run in inView { bytes[run.state, default: 0] += run.end - run.start }
        let privateBytes = bytes["private"] ?? 0, sharedBytes = bytes["shared"] ?? 0
        let data = privateBytes + sharedBytes
        func percent(_ part: UInt64) -> String {
            data == 0 ? "0.0%" : String(format: "%.1f%%", Double(part) * 100 / Double(data))
        }
        // A past moment says which, and the last conversion it includes.
        let moment = memory.atEventId.map { " after event \($0)" } ?? memory.atNs.map { " at \(utcTime($0)) UTC" } ?? ""
        let through =
            moment.isEmpty
            ? "" : memory.throughEventId.map { " (through conversion \($0))" } ?? " (before any conversion)"
        let extent =
            zoomed
            ? "\(humanBytes(upper - lower)) shown of \(humanBytes(memory.dataRamEnd)) of guest RAM"
            : "\(humanBytes(memory.dataRamEnd)) of guest RAM"
        var lines = [
            "VM \(memory.vmId) on \(host)\(moment)\(through): \(extent), \(hex(lower)) – \(hex(upper))",
            "[\(bar)]",
            "\(bootCell) boot region \(humanBytes(bytes["boot"] ?? 0))   \(privateCell) private \(humanBytes(privateBytes)) (\(percent(privateBytes)))   "
                + "\(sharedCell) shared \(humanBytes(sharedBytes)) (\(percent(sharedBytes)))   "
                + "\(inView.count { $0.state != "boot" }) runs of data RAM (percentages of data RAM\(zoomed ? " in view" : ""))",
        ]
        // The exact addresses: every run when few are in view, else how to see them.
        if inView.count <= listedRuns {
            lines += inView.map {
                "  \(hex($0.start)) – \(hex($0.end))  \($0.state.padding(toLength: 7, withPad: " ", startingAt: 0))  \(humanBytes($0.end - $0.start))"
            }
        } else {
            lines.append(
                "\(inView.count) runs in view: zoom in with --from and --to (hex addresses such as \(hex(lower)) or decimal) to list them"
            )
        }
        return lines.joined(separator: "\n")
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}
