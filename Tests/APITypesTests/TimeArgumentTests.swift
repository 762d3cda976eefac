import APITypes
import Testing

/// Times as operators type them.
@Suite struct TimeArgumentTests {
    let now: UInt64 = 1_800_000_000_000_000_000

    @Test func durationsCountBackFromNow() {
        #expect(TimeArgument.nanos("15m", nowNanos: now) == now - 15 * 60_000_000_000)
        #expect(TimeArgument.nanos("90s", nowNanos: now) == now - 90_000_000_000)
        #expect(TimeArgument.nanos("2h", nowNanos: now) == now - 7_200_000_000_000)
        #expect(TimeArgument.nanos("7d", nowNanos: now) == now - 7 * 86_400_000_000_000)
        #expect(TimeArgument.nanos("100000d", nowNanos: 5) == 0, "before the epoch is the epoch")
    }

    @Test func rfc3339AndNanoseconds() {
        #expect(TimeArgument.nanos("1970-01-01T00:00:00Z", nowNanos: now) == 0)
        #expect(TimeArgument.nanos("2026-11-27T10:00:00Z", nowNanos: now) == 1_795_773_600_000_000_000)
        #expect(TimeArgument.nanos("2026-11-27T12:00:00.5+02:00", nowNanos: now) == 1_795_773_600_500_000_000)
        #expect(TimeArgument.nanos("2026-11-27 10:00:00.000000001z", nowNanos: now) == 1_795_773_600_000_000_001)
        #expect(TimeArgument.nanos("2024-02-29T00:00:00Z", nowNanos: now) != nil)
        #expect(TimeArgument.nanos("1795773600000000000ns", nowNanos: now) == 1_795_773_600_000_000_000)
    }

    @Test(arguments: [
        "", "m", "-5m", "15w", "2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-27T24:00:00Z",
        "2026-11-27T10:00:00", "2026-11-27T10:00:00+2:00", "2026-11-27T10:00:00.Z", "yesterday",
        "99999999999999999999d",
        "10", "1795773600000000000", "ns", "-5ns",
    ])
    func nonsenseIsRefused(text: String) {
        #expect(TimeArgument.nanos(text, nowNanos: now) == nil)
    }
}
