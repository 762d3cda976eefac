import APITypes

/// A VM's guest-physical memory as one terminal bar, drawn to scale: the boot
/// region, private runs and shared runs, with totals. Pure.
public enum MemoryBar {
    public static let bootCell: Character = "#"
    public static let privateCell: Character = "="
    public static let sharedCell: Character = "."

    /// The bar's cells: each covers `total / width` bytes and shows the state holding most of it.
    public static func cells(_ memory: VMMemory, width: Int) -> [Character] {
        let width = max(width, 1)
        let total = memory.dataRamEnd
        guard total > 0 else { return [] }
        var runs = [MemoryRun(start: memory.bootRegion.start, end: memory.bootRegion.end, state: "boot")] + memory.runs
        runs.sort { $0.start < $1.start }
        return (0..<width).map { cell in
            let from = UInt64(Double(total) * Double(cell) / Double(width))
            let to = UInt64(Double(total) * Double(cell + 1) / Double(width))
            var bytes: [String: UInt64] = [:]
            for run in runs where run.end > from && run.start < to {
                bytes[run.state, default: 0] += min(run.end, to) - max(run.start, from)
            }
            switch bytes.max(by: { $0.value < $1.value })?.key {
            case "boot": return bootCell
            case "shared": return sharedCell
            default: return privateCell
            }
        }
    }

    public static func render(_ memory: VMMemory, host: String, width: Int = 64) -> String {
        let bar = String(cells(memory, width: width))
        let data = memory.privateBytes + memory.sharedBytes
        func percent(_ part: UInt64) -> String {
            data == 0 ? "0.0%" : String(format: "%.1f%%", Double(part) * 100 / Double(data))
        }
        // A past moment says which, and the last conversion it includes.
        let moment = memory.atEventId.map { " after event \($0)" } ?? memory.atNs.map { " at \(utcTime($0)) UTC" } ?? ""
        let through = moment.isEmpty ? "" : memory.throughEventId.map { " (through conversion \($0))" } ?? " (before any conversion)"
        return """
            VM \(memory.vmId) on \(host)\(moment)\(through): \(humanBytes(memory.dataRamEnd)) of guest RAM, 0x0 – 0x\(String(memory.dataRamEnd, radix: 16))
            [\(bar)]
            \(bootCell) boot region \(humanBytes(memory.bootRegion.end - memory.bootRegion.start))   \
            \(privateCell) private \(humanBytes(memory.privateBytes)) (\(percent(memory.privateBytes)))   \
            \(sharedCell) shared \(humanBytes(memory.sharedBytes)) (\(percent(memory.sharedBytes)))   \
            \(memory.runs.count) runs of data RAM (percentages of data RAM)
            """
    }
}
