/// A nanosecond epoch time to the second, as people read it on a page or a picture: `2026-11-25 09:50:13 UTC`.
public func utcSeconds(_ nanos: UInt64) -> String {
    String(utcTime(nanos).prefix(19)) + " UTC"
}

/// A nanosecond epoch time as UTC `2026-11-25 09:50:13.123`.
public func utcTime(_ nanos: UInt64) -> String {
    let seconds = nanos / 1_000_000_000
    let millis = (nanos / 1_000_000) % 1000
    var days = Int64(seconds / 86_400)
    let rest = Int(seconds % 86_400)
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    days += 719_468
    let era = (days >= 0 ? days : days - 146_096) / 146_097
    let dayOfEra = days - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    let millisText = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
    return
        "\(year)-\(two(Int(month)))-\(two(Int(day))) \(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60)).\(millisText)"
}
