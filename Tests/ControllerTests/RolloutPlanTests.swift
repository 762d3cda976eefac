import Controller
import Testing

/// The waves of a rollout and what a bake counts: pure.
struct RolloutPlanTests {
    func hosts(_ count: Int, labels: (Int) -> [String: String] = { _ in [:] }) throws -> [HostEntry] {
        try (0..<count).map { try HostEntry(url: "http://10.0.0.\($0 + 1):7070", name: "h\($0)", labels: labels($0)) }
    }

    @Test func canarySizesParseAndClamp() {
        #expect(CanarySize("3") == .hosts(3) && CanarySize("5%") == .percent(5) && CanarySize("0.5%") == .percent(0.5))
        for bad in ["0", "-1", "0%", "101%", "x", "", "5%%", "nan%", "inf%"] {
            #expect(CanarySize(bad) == nil, "\(bad)")
        }
        #expect(CanarySize.hosts(3).count(of: 2) == 2 && CanarySize.hosts(3).count(of: 0) == 0)
        #expect(CanarySize.percent(1).count(of: 10) == 1, "at least one host")
        #expect(CanarySize.percent(10).count(of: 10_000) == 1000 && CanarySize.percent(0.01).count(of: 10_000) == 1)
        #expect(CanarySize.percent(100).count(of: 7) == 7)
    }

    @Test func wavesGrowByTheStepAndCoverEveryHostOnce() throws {
        let inventory = try hosts(100)
        let plan = try RolloutPlan(hosts: inventory, canary: .hosts(2), seed: 7, step: 4)
        #expect(plan.waves.map(\.count) == [2, 8, 32, 58])
        let all = plan.waves.flatMap { $0 }
        #expect(all.sorted() == Array(0..<100) && Set(all).count == 100)
        #expect(plan.waves.dropFirst().allSatisfy { $0 == $0.sorted() }, "later waves keep inventory order")
        #expect(
            try RolloutPlan(hosts: inventory, canary: .hosts(2), seed: 7, step: 4) == plan,
            "the same seed, the same plan")
        let other = try RolloutPlan(hosts: inventory, canary: .hosts(2), seed: 8, step: 4)
        #expect(other.waves[0] != plan.waves[0], "another seed, another canary (for these two seeds)")
        #expect(
            try RolloutPlan(hosts: inventory, canary: .hosts(1), seed: 1, step: 1).waves.count == 100,
            "a step of 1: one host a wave")
        #expect(try RolloutPlan(hosts: inventory, canary: .percent(100), seed: 1).waves.count == 1)
        #expect(plan.wave(of: plan.waves[2][0]) == 2 && plan.wave(of: 1000) == nil)
    }

    @Test func aSeededCanaryIsAUniformSample() throws {
        // Over many seeds every host is drawn about equally often into a one-host canary of ten.
        let inventory = try hosts(10)
        var drawn = [Int](repeating: 0, count: 10)
        for seed in UInt64(0)..<5000 {
            drawn[try RolloutPlan(hosts: inventory, canary: .hosts(1), seed: seed).waves[0][0]] += 1
        }
        #expect(drawn.allSatisfy { (400...600).contains($0) }, "\(drawn)")
    }

    @Test func labelsChooseTheCanaryAndAMissingLabelIsAnError() throws {
        let inventory = try hosts(20) { ["zone": $0 % 5 == 0 ? "canary" : "main", "rack": "\($0 % 2)"] }
        let plan = try RolloutPlan(hosts: inventory, canary: .hosts(3), select: ["zone": "canary"], seed: 99)
        #expect(plan.waves[0] == [0, 5, 10])
        #expect(
            try RolloutPlan(hosts: inventory, canary: .hosts(9), select: ["zone": "canary", "rack": "0"], seed: 1)
                .waves[0] == [0, 10])
        #expect(throws: RolloutPlanError.self) {
            try RolloutPlan(hosts: inventory, canary: .hosts(1), select: ["zone": "mars"], seed: 1)
        }
        #expect(throws: RolloutPlanError.self) { try RolloutPlan(hosts: [], canary: .hosts(1), seed: 1) }
        #expect(throws: RolloutPlanError.self) {
            try RolloutPlan(hosts: inventory, canary: .hosts(1), seed: 1, step: 0.5)
        }
        #expect(throws: RolloutPlanError.self) {
            try RolloutPlan(hosts: inventory, canary: .hosts(1), seed: 1, step: .nan)
        }
    }

    @Test func tenThousandHostsPlanQuickly() throws {
        let plan = try RolloutPlan(hosts: try hosts(10_000), canary: .percent(1), seed: 3)
        #expect(plan.waves.map(\.count) == [100, 400, 1600, 6400, 1500])
    }

    // MARK: The bake

    static let candidate = String(repeating: "c", count: 64)

    func conversion(_ id: Int, decision: String, version: String = candidate, trigger: String = "implicit") -> String {
        """
        {"conversion":{"changed_bytes":0,"completed_ns":2,"decision":"\(decision)","direction":"to_shared","discarded_bytes":0,\
        "event_id":\(id),"gpa":4096,"guest_result":0,"policy_version":"\(version)","reason":"rule 0 (deny)","requested_ns":1,\
        "size":4096,"source":"emulated","trigger":"\(trigger)","vcpu":0,"vm_id":3},"event_id":\(id),"kind":"conversion"}
        """
    }

    func ended(_ id: Int, state: String) -> String {
        """
        {"event_id":\(id),"kind":"vm_ended","vm_event":{"event_id":\(id),"final_state":"\(state)","reason":"denied","time_ns":5,\
        "vm_id":3,"vm_name":"web","what":"ended"}}
        """
    }

    @Test func onlyTheCandidatesDenialsAndFaultedEndsCount() {
        var tally = BakeTally(candidateVersion: Self.candidate)
        tally.record(host: 1, eventID: 10, type: "conversion", data: conversion(10, decision: "applied"))
        tally.record(
            host: 1, eventID: 11, type: "conversion",
            data: conversion(11, decision: "denied", version: String(repeating: "o", count: 64)))
        tally.record(host: 1, eventID: 12, type: "vm_ended", data: ended(12, state: "stopped"))
        tally.record(host: 1, eventID: 13, type: "conversion", data: "{not json")
        #expect(tally.breach(BakeLimits()) == nil && tally.events == 4)
        tally.record(host: 2, eventID: 20, type: "conversion", data: conversion(20, decision: "denied"))
        let breach = tally.breach(BakeLimits())
        #expect(
            breach?.kind == "new denials" && breach?.count == 1 && breach?.evidence.first?.host == 2
                && breach?.evidence.first?.eventID == 20)
        #expect(
            breach?.evidence.first?.what.contains("implicit to_shared of 4096 bytes at 0x1000 denied: rule 0 (deny)")
                == true)
        var allowing = BakeLimits()
        allowing.maxNewDenials = 1
        #expect(tally.breach(allowing) == nil)
        tally.record(host: 2, eventID: 21, type: "vm_ended", data: ended(21, state: "faulted"))
        #expect(
            tally.breach(allowing)?.kind == "faulted VMs"
                && tally.breach(allowing)?.evidence.first?.what.contains("(web) faulted") == true)
    }

    @Test func hostsDownAtTheEndCountAsUnreachable() {
        var tally = BakeTally(candidateVersion: Self.candidate)
        tally.lost(host: 4, reason: "Couldn't connect to server")
        tally.lost(host: 5, reason: "timeout")
        tally.regained(host: 5)
        let breach = tally.breach(BakeLimits())
        #expect(breach?.kind == "unreachable hosts" && breach?.count == 1 && breach?.evidence.first?.host == 4)
        var limits = BakeLimits()
        limits.maxUnreachable = 1
        #expect(tally.breach(limits) == nil)
    }
}

/// A bake that never saw a host cannot vouch for it.
@Suite struct BakeSettleTests {
    @Test func aHostWhoseStreamNeverOpenedIsUnreachableEvenIfItAnswers() {
        var tally = BakeTally(candidateVersion: "v")
        tally.lost(host: 0, reason: "its event stream never opened")
        tally.lost(host: 1, reason: "its event stream never opened")
        tally.lost(host: 2, reason: "its event stream never opened")
        tally.disconnected(host: 1, reason: "HTTP 503")
        tally.regained(host: 0)
        tally.disconnected(host: 0, reason: "connection reset")
        tally.settle(host: 0, answers: true, reason: "")
        tally.settle(host: 1, answers: true, reason: "")
        tally.settle(host: 2, answers: true, reason: "")
        #expect(tally.down[0] == nil, "watched, then briefly cut, and answering at the end")
        #expect(tally.down[1] == "HTTP 503", "refused and never watched")
        #expect(tally.down[2] == nil, "still connecting when the bake ended: the health look decides")
        #expect(tally.breach(BakeLimits())?.kind == "unreachable hosts")
        var generous = BakeLimits()
        generous.maxUnreachable = 1
        #expect(tally.breach(generous) == nil)
    }
}
