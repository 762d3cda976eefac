import Glibc

/// Nanosecond clocks, the one wrapper of clock_gettime: monotonic for durations,
/// realtime for record timestamps.
public enum MonotonicClock {
    @inline(__always)
    public static func nanos() -> UInt64 {
        var now = timespec()
        // Safety: clock_gettime fills the timespec it is given; no pointers escape.
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Nanoseconds since the Unix epoch.
    public static func wallNanos() -> UInt64 {
        var now = timespec()
        // Safety: as above.
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
