import APITypes
import ArgumentParser
import Foundation
import Platform

/// `--since` / `--until` values: 15m (ago), RFC 3339, or nanoseconds since the epoch with `ns`.
enum TimeFlag {
    static func nowNanos() -> UInt64 { MonotonicClock.wallNanos() }

    /// The time `value` names, nil when absent; a usage error naming `flag` when it names none.
    static func nanos(_ value: String?, flag: String, now: UInt64) throws -> UInt64? {
        guard let value else { return nil }
        guard let nanos = TimeArgument.nanos(value, nowNanos: now) else {
            throw ValidationError(
                """
                \(flag) takes 15m (s, m, h or d ago), an RFC 3339 time such as 2026-11-27T10:00:00Z, or nanoseconds since the epoch \
                with their unit (1795773600000000000ns); not \(value)
                """)
        }
        return nanos
    }
}
