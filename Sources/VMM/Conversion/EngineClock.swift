import KVM
import Platform

/// Where the conversion engine reads time: monotonic for the rate limiter,
/// wall-clock for record timestamps. Injected so tests can control both.
public protocol EngineClock: Sendable {
    func monotonicNanos() -> UInt64
    func wallNanos() -> UInt64
}

/// The host's clocks.
public struct SystemClock: EngineClock {
    public init() {}
    public func monotonicNanos() -> UInt64 { MonotonicClock.nanos() }
    public func wallNanos() -> UInt64 { MonotonicClock.wallNanos() }
}
