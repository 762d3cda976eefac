import APITypes
import Testing

@testable import Pictures

/// The status page's pieces people read: times ago, names with ids, the live rows it loads with.
struct StatusPageTests {
    let now: UInt64 = 1_800_000_000_000_000_000

    @Test func timesReadAsAgo() {
        let second: UInt64 = 1_000_000_000
        #expect(StatusPage.relative(now, now: now) == "just now")
        #expect(StatusPage.relative(now + 5 * second, now: now) == "just now", "another clock ahead of ours")
        #expect(StatusPage.relative(now - 42 * second, now: now) == "42 s ago")
        #expect(StatusPage.relative(now - 180 * second, now: now) == "3 min ago")
        #expect(StatusPage.relative(now - 5 * 3600 * second, now: now) == "5 h ago")
        #expect(StatusPage.relative(now - 3 * 86_400 * second, now: now) == "3 d ago")
        let time = StatusPage.time(now - 42 * second, now: now)
        #expect(time.contains(">42 s ago</time>") && time.contains("title=\"\(utcTime(now - 42 * second)) UTC\""))
        #expect(
            StatusPage.uptime(42) == "42 s" && StatusPage.uptime(3 * 3600 + 120) == "3 h 2 min"
                && StatusPage.uptime(2 * 86_400 + 3600) == "2 d 1 h")
    }

    @Test func liveRowsNameTheVMAndUseBinaryUnits() {
        let conversion = ConversionEvent(
            eventId: 9, vmId: 2, vcpu: 0, requestedNs: now, completedNs: now, gpa: 0x200000, size: 3 << 20,
            direction: "to_shared", trigger: "explicit", decision: "applied", reason: "allowed",
            policyVersion: "v", source: "hypercall", changedBytes: 3 << 20, discardedBytes: 0, guestResult: 0)
        let row = StatusPage.liveRow(EventEntry(conversion: conversion), names: [2: "db<1>"], now: now) ?? ""
        #expect(row.hasPrefix("<tr id=\"event-9\"><td>9</td>"))
        #expect(
            row.contains("<td>db&lt;1&gt; (VM 2)</td>") && row.contains("to_shared 0x200000 3.0 MiB: applied (allowed)")
        )
        let unnamed = StatusPage.liveRow(EventEntry(conversion: conversion), names: [:], now: now) ?? ""
        #expect(unnamed.contains("<td>VM 2</td>"))
    }
}
