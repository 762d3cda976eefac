import Foundation
import KVM
import Logging
import MemoryModel
import TestSupport
import Testing

@testable import VMM

/// Replay against the engine itself: histories the engine made under a policy, with
/// shared-bytes and rate limits, replayed under that policy give back its decisions.
@Suite struct PolicyReplayPropertyTests {
    static func policy(_ random: inout SplitMix64) -> String {
        var rules: [String] = []
        for _ in 0..<Int.random(in: 0...3, using: &random) {
            let first = 0x20_0000 + UInt64.random(in: 0..<16, using: &random) * 4096
            let direction =
                ["", #","direction":"to_shared""#, #","direction":"to_private""#].randomElement(using: &random) ?? ""
            let action = Bool.random(using: &random) ? "allow" : "deny"
            rules.append(
                #"{"match":{"gpa":["0x\#(String(first, radix: 16))","0x\#(String(first + 3 * 4096, radix: 16))"]\#(direction)},"action":"\#(action)"}"#
            )
        }
        var limits: [String] = []
        if Bool.random(using: &random) {
            limits.append(#""max_shared_bytes":\#(UInt64.random(in: 1...12, using: &random) * 4096)"#)
        }
        if Bool.random(using: &random) {
            limits.append(#""max_conversions_per_second":\#(Int.random(in: 1...6, using: &random))"#)
        }
        let explicit = Int.random(in: 0..<5, using: &random) == 0 ? "deny" : "allow"
        return
            #"{"defaults":{"explicit":"\#(explicit)"},"rules":[\#(rules.joined(separator: ","))],"limits":{\#(limits.joined(separator: ","))}}"#
    }

    @Test func replayingThePolicyThatMadeAHistoryGivesBackItsDecisions() throws {
        var reasons: [String] = []
        for seed in 0..<40 {
            reasons += try replayOnce(seed: seed)
        }
        // The generated histories exercised every kind of denial the replay must reproduce.
        for kind in ["max_shared_bytes", "max_conversions_per_second", "rule ", "default explicit deny"] {
            #expect(reasons.contains { $0.hasPrefix(kind) }, "no denial by \(kind) in 40 histories")
        }
    }

    /// One generated history checked; returns the reasons of its denials.
    func replayOnce(seed: Int) throws -> [String] {
        var random = SplitMix64(state: UInt64(seed))
        let document = Self.policy(&random)
        let clock = ManualClock()
        let events = InMemoryEventSink()
        let engine = try ConversionEngineTests().engine(policy: document, clock: clock, events: events)
        let dataRAM = ConversionEngineTests().dataRAM
        for _ in 0..<150 {
            let page = UInt64.random(in: 0..<16, using: &random)
            let count = UInt64.random(in: 1...3, using: &random)
            let attributes: UInt64 = Bool.random(using: &random) ? 0 : MapGPARangeCall.encrypted
            _ = engine.explicit(
                MapGPARangeCall(gpa: dataRAM.start + page * 4096, pageCount: count, attributes: attributes), vcpu: 0)
            clock.advance(seconds: Double(Int.random(in: 0...400, using: &random)) / 1000)
        }
        let recorded = events.conversions

        let policy = try VersionedPolicy(document: Array(document.utf8)).policy
        let replay = Self.replayed(recorded, under: policy, dataRAM: dataRAM, samples: 1000)
        let decided = recorded.filter { $0.decision != .invalid }
        #expect(replay.requests == decided.count)
        #expect(
            replay.changed == 0,
            "seed \(seed) \(document): \(replay.samples.prefix(3).map { "\($0.request.eventID): \($0.request.reason) → \($0.newReason)" })"
        )
        #expect(replay.transitions[true]?[true] == decided.filter { $0.decision == .applied }.count)

        // And a candidate that denies every explicit to_private finds exactly the allowed ones.
        let strict = try VersionedPolicy(
            document: Array(#"{"rules":[{"match":{"direction":"to_private"},"action":"deny"}]}"#.utf8)
        ).policy
        let denying = Self.replayed(recorded, under: strict, dataRAM: dataRAM, samples: 5)
        let becomeDenied = recorded.enumerated().filter {
            $0.element.direction == .toPrivate && $0.element.decision == .applied
        }
        #expect(denying.allowedToDenied == becomeDenied.count)
        #expect(
            denying.samples.filter(\.wasAllowed).map(\.request.eventID)
                == becomeDenied.prefix(denying.samples.filter(\.wasAllowed).count).map { Int64($0.offset + 1) })
        return recorded.filter { $0.decision == .denied }.map(\.reason)
    }

    /// The engine's records replayed under `policy`, with event ids 1, 2, … in record order.
    static func replayed(_ recorded: [ConversionRecord], under policy: Policy, dataRAM: PageRange, samples: Int)
        -> PolicyReplay
    {
        var replay = PolicyReplay(candidate: policy, sampleLimit: samples)
        replay.add(vm: 9, PolicyReplay.VM(name: "engine", dataRAM: dataRAM, initialState: .private))
        for (index, record) in recorded.enumerated() {
            replay.replay(
                PolicyReplay.Request(
                    eventID: Int64(index + 1), vmID: 9, requestedNanos: record.requestedNanos,
                    range: PageRange(start: record.gpa, size: record.size), direction: record.direction,
                    trigger: record.trigger,
                    vcpu: record.vcpu, decision: record.decision, reason: record.reason))
        }
        return replay
    }
}
