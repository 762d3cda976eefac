import Controller
import Foundation
import Testing

/// The rollout state file: a real SQLite file, closed and opened again as a restarted controller would.
struct RolloutStateTests {
    func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("rollout-state-\(UUID().uuidString)").path
    }

    @Test func aRolloutSurvivesReopeningStepByStep() throws {
        let dir = folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/nested/rollouts.db"
        let hosts = try (0..<5).map { try HostEntry(url: "http://10.0.0.\($0 + 1):7070", name: "h\($0)") }
        let plan = try RolloutPlan(hosts: hosts, canary: .hosts(1), seed: 42, step: 2)
        var limits = BakeLimits()
        limits.maxFaulted = 2
        let settings = RolloutSettings(bakeSeconds: 60, limits: limits, canary: "1", select: [:], seed: 42, step: 2)
        let candidate = Array(#"{"name":"next","defaults":{"implicit":"deny"}}"#.utf8)
        let id: Int64
        do {
            let store = try RolloutStateStore(path: path)
            id = try store.begin(
                candidate: candidate, version: "v-new", plan: plan, settings: settings, hosts: hosts, atNanos: 7)
            let canary = plan.waves[0][0]
            var record = try #require(try store.hosts(id).first { $0.host == canary })
            #expect(record.state == .pending && record.wave == 0 && record.name == "h\(canary)")
            record.state = .pushed
            record.oldVersion = "v-old"
            record.oldDocument = Array("{\"name\":\"old\"}\n".utf8)
            record.newVersion = "v-new"
            record.afterEvent = 1234
            try store.update(id, host: record)
            try store.step(id, wave: 0, phase: .bake, bakeStartedNanos: 99)
        }
        // A controller killed here: the next one finds everything.
        let again = try RolloutStateStore(path: path)
        let rollout = try #require(try again.rollout())
        #expect(
            rollout.id == id && rollout.state == .running && rollout.wave == 0 && rollout.phase == .bake
                && rollout.bakeStartedNanos == 99)
        #expect(
            rollout.plan == plan && rollout.settings == settings && rollout.candidate == candidate
                && rollout.candidateVersion == "v-new")
        let pushed = try again.hosts(id).filter { $0.state == .pushed }
        #expect(
            pushed.count == 1 && pushed[0].oldDocument == Array("{\"name\":\"old\"}\n".utf8)
                && pushed[0].afterEvent == 1234)
        #expect(try again.hosts(id).map(\.host) == Array(0..<5))
        try again.addEvidence(
            id, wave: 0,
            breach: BakeBreach(
                kind: "faulted VMs", count: 3, limit: 2,
                evidence: [BakeEvidence(host: 2, eventID: 9, what: "VM 1 (web) faulted")]))
        try again.finish(id, state: .breached, outcome: "3 faulted VMs (limit 2) on h2")
        let ended = try again.rollout(id)
        #expect(ended?.state == .breached && ended?.outcome == "3 faulted VMs (limit 2) on h2")
        #expect(try again.rollout(id + 1) == nil)
        // Owner-only, as every file with fleet data.
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func aFileThatIsNotAStateFileIsRefusedByName() throws {
        let dir = folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/not-sqlite.db"
        try Data("this is not a database".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try RolloutStateStore(path: path) } throws: { error in
            "\(error)".contains(path)
        }
    }
}
