/// Axis ticks people can read: evenly spaced at round values of the data's own range,
/// each label distinct, the whole axis in one unit. Pure.
public enum Axis {
    public struct Tick: Sendable, Equatable {
        public var value: UInt64
        public var label: String
    }

    /// Round time steps in nanoseconds: 1-2-5 below a second, then the clock's own steps.
    static let timeSteps: [UInt64] = {
        var steps: [UInt64] = []
        var decade: UInt64 = 1
        while decade < 1_000_000_000 {
            steps += [decade, 2 * decade, 5 * decade]
            decade *= 10
        }
        let second: UInt64 = 1_000_000_000, minute = 60 * second, hour = 60 * minute, day = 24 * hour
        steps += [1, 2, 5, 10, 15, 30].map { $0 * second } + [1, 2, 5, 10, 15, 30].map { $0 * minute }
        steps +=
            [1, 2, 3, 6, 12].map { $0 * hour }
            + [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].map { $0 * day }
        return steps
    }()

    /// Ticks over [0, span] nanoseconds, at most `maxIntervals` steps of one round size.
    public static func timeTicks(span: UInt64, maxIntervals: Int = 5) -> [Tick] {
        let span = max(span, 1), intervals = UInt64(max(maxIntervals, 1))
        let step = timeSteps.first { span / $0 <= intervals } ?? (span / intervals + 1)
        let unit = timeUnit(span: span)
        let decimals = self.decimals(step: step, unit: unit.nanos)
        return stride(from: UInt64(0), through: span, by: Int(clamping: step)).map { value in
            Tick(value: value, label: number(value, unit: unit.nanos, decimals: decimals) + " " + unit.name)
        }
    }

    /// The one unit a time axis over `span` is labelled in.
    static func timeUnit(span: UInt64) -> (name: String, nanos: UInt64) {
        switch span {
        case ..<1_000: ("ns", 1)
        case ..<1_000_000: ("µs", 1_000)
        case ..<1_000_000_000: ("ms", 1_000_000)
        case ..<120_000_000_000: ("s", 1_000_000_000)
        case ..<7_200_000_000_000: ("min", 60_000_000_000)
        case ..<172_800_000_000_000: ("h", 3_600_000_000_000)
        default: ("d", 86_400_000_000_000)
        }
    }

    /// Ticks from 0 up to the first multiple of a power-of-two step at or above `maximum`
    /// (at least one 4 KiB page), at most `maxIntervals` steps; `top` is the last tick.
    public static func byteTicks(maximum: UInt64, maxIntervals: Int = 4) -> (top: UInt64, ticks: [Tick]) {
        let maximum = max(maximum, 4096), intervals = UInt64(max(maxIntervals, 1))
        var step: UInt64 = 1
        while step < (maximum + intervals - 1) / intervals, step < UInt64(1) << 62 { step <<= 1 }
        let top = (maximum + step - 1) / step * step
        let units: [(String, UInt64)] = [
            ("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40), ("PiB", 1 << 50),
        ]
        let unit = units.last { $0.1 <= top } ?? units[0]
        let decimals = self.decimals(step: step, unit: unit.1)
        let ticks = stride(from: UInt64(0), through: top, by: Int(clamping: step)).map { value in
            Tick(value: value, label: number(value, unit: unit.1, decimals: decimals) + " " + unit.0)
        }
        return (top, ticks)
    }

    /// Digits after the point that tell one step from the next.
    static func decimals(step: UInt64, unit: UInt64) -> Int {
        var ratio = Double(step) / Double(max(unit, 1))
        var decimals = 0
        while abs(ratio - ratio.rounded()) > 1e-9, decimals < 6 {
            ratio *= 10
            decimals += 1
        }
        return decimals
    }

    /// `value / unit` with `decimals` digits, trailing zeros dropped (1.5, 2, 0.25).
    static func number(_ value: UInt64, unit: UInt64, decimals: Int) -> String {
        let whole = value / max(unit, 1), rest = value % max(unit, 1)
        guard decimals > 0, rest != 0 else { return "\(whole)" }
        var fraction = ""
        var remainder = rest
        for _ in 0..<decimals {
            remainder = remainder.multipliedReportingOverflow(by: 10).partialValue
            fraction.append(Character(String(remainder / unit)))
            remainder %= unit
        }
        while fraction.last == "0" { fraction.removeLast() }
        return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
    }

    /// Roughly how wide `text` is drawn in a sans-serif face at `fontSize` px: an
    /// over-estimate (0.66 em a character; DejaVu Sans' digits are 0.64 em), so labels
    /// placed by it never touch. The Chromium tests measure the real boxes.
    public static func textWidth(_ text: String, fontSize: Double) -> Double {
        Double(text.count) * fontSize * 0.66
    }

    /// `text` cut to `limit` characters with an ellipsis.
    public static func shortened(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(limit - 1, 0))) + "…"
    }
}
