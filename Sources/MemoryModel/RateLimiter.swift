/// A token bucket: at most `rate` conversions per second, with bursts of up
/// to `rate`. Pure: the caller supplies the time in nanoseconds.
public struct RateLimiter: Sendable, Equatable {
    public let rate: UInt64
    private var tokens: Double
    private var lastNanos: UInt64?

    public init(perSecond rate: UInt64) {
        self.rate = rate
        tokens = Double(rate)
    }

    /// Takes one token if available.
    public mutating func allow(atNanos now: UInt64) -> Bool {
        if let last = lastNanos, now > last {
            tokens = min(Double(rate), tokens + Double(now - last) * Double(rate) / 1e9)
        }
        lastNanos = max(lastNanos ?? now, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
