import Glibc

/// The `Date` header value, formatted once per second.
struct HTTPDate {
    private var formattedAt: UInt64 = 0
    private var cached: [UInt8] = []

    mutating func bytes(now: UInt64) -> [UInt8] {
        if cached.isEmpty || now &- formattedAt >= 1_000_000_000 {
            formattedAt = now
            cached = Array(Self.format(time(nil)).utf8)
        }
        return cached
    }

    /// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func format(_ seconds: time_t) -> String {
        var value = seconds
        var parts = tm()
        gmtime_r(&value, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return
            "\(days[Int(parts.tm_wday) % 7]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon) % 12]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
