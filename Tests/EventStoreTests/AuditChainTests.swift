import APITypes
import Foundation
import JSON
import Logging
import MemoryModel
import SQLite
import Testing

@testable import EventStore

/// Schema 9: every event and admitted write carries its chain value, the API's rendering
/// recomputes to it, and an edit, a deletion or an insertion is named by `db verify`.
@Suite struct AuditChainTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func conversion(_ vm: Int64, _ index: UInt64, decision: ConversionDecision, at time: UInt64) -> ConversionRecord {
        ConversionRecord(
            vmID: vm, vm: "chained", vcpu: 0, requestedNanos: time,
            completedNanos: decision == .pending ? nil : time + 5,
            gpa: 0x20_0000 + index * 4096, size: 4096, direction: index % 2 == 0 ? .toShared : .toPrivate,
            trigger: .explicit,
            decision: decision, reason: "rule \(index): \"q\"\t\u{1}", policyVersion: VersionedPolicy.builtIn.version,
            source: .emulated, discardedBytes: 0, guestResult: 0)
    }

    /// A store with every kind of row: lifecycle, faults, conversions (one pending across commits), a policy, API writes.
    func recorded(_ path: String, endVM: Bool = true) throws -> Int64 {
        let store = try EventStore(path: path, logger: logger)
        defer { store.close() }
        let vm = try store.register(
            VMRegistration(
                name: "chained", memoryBytes: 1 << 25, vcpus: 1, backend: "alias",
                dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
            createdNanos: 100)
        store.vmStarted(vm, atNanos: 110)
        try store.recordPolicy(
            VersionedPolicy.builtIn,
            change: PolicyChange(
                principal: "alice", channel: "rollout 7 wave 1", rolloutID: "7", idempotencyKey: "k-1"), atNanos: 120)
        let pending = store.begin(conversion: conversion(vm, 0, decision: .pending, at: 130))
        for index in 1...20 as ClosedRange<UInt64> {
            _ = store.record(
                fault: MemoryFaultRecord(
                    vmID: vm, vm: "chained", vcpu: 0, timeNanos: 130 + index, gpa: 0x20_0000 + index * 4096,
                    size: 4096, flags: index % 2 == 0 ? 8 : 0, source: .emulated, access: .write))
            _ = store.record(
                conversion: conversion(vm, index, decision: index % 3 == 0 ? .denied : .applied, at: 140 + index))
        }
        store.flush()
        // Behind the pending conversion nothing is chained yet; the head stops before it.
        let waiting = try EventQueries(path: path).auditHead().events
        #expect(waiting.lastId == Int64(pending.ticket.id) - 1)
        store.finish(
            pending.ticket, decision: .applied, reason: nil, completedNanos: 200, discardedBytes: 0, guestResult: 0)
        store.recordAPIRequest(
            method: "POST", path: "/v1/vms", status: 201, durationNanos: 9, client: "alice", atNanos: 140)
        store.recordAPIRequest(
            method: "PUT", path: "/v1/policy", status: 200, durationNanos: 9, client: "bob", atNanos: 160)
        if endVM {
            _ = store.vmEnded(
                vm, atNanos: 300, state: "stopped", reason: nil, exitStatus: 0,
                layout: PageStateMap(bounds: PageRange(start: 0x20_0000, end: 0x200_0000), initial: .private))
        }
        store.flush()
        // Both ways of linking ran: rows behind the pending conversion were read back, the ones after it linked as inserted.
        let links = store.auditChainLinks
        #expect(links.inline > 0 && links.readBack > 0, "\(links)")
        return vm
    }

    @Test func everyRowIsChainedAndTheAPIRecomputesIt() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        _ = try recorded(path)
        let reports = try Maintenance.verify(path: path)
        #expect(reports.map(\.problem) == [nil, nil])
        // created, started, the policy, 41 conversions and faults, ended.
        #expect(reports.first?.rows == 45 && reports.last?.rows == 2)
        // What a puller sees: each entry, without its chain and joined names, in canonical form, links to its chain value.
        let queries = EventQueries(path: path)
        let page = try StrictJSON.parse(try queries.allEventsPageJSON(after: 0, limit: 1000))
        guard case .array(let entries)? = page["events"] else {
            Issue.record("no events array")
            return
        }
        var previous = AuditChain.zero
        var kinds = Set<String>()
        for entry in entries {
            guard case .string(let chain)? = entry["chain"], case .string(let kind)? = entry["kind"] else {
                Issue.record("entry without chain: \(entry)")
                return
            }
            previous = AuditChain.link(previous, ChainLink.canonical(entry: entry))
            #expect(SHA256.hexString(previous) == chain, "\(kind) entry does not recompute")
            kinds.insert(kind)
        }
        #expect(kinds == ["vm_created", "vm_started", "policy_applied", "memory_fault", "conversion", "vm_ended"])
        let head = try queries.auditHead()
        #expect(
            head.events.chain == SHA256.hexString(previous) && head.events.count == 45 && head.events.genesis == nil)
        // The plain page carries the same values.
        let plain = try APIJSON.decoder().decode(
            EventPage.self, from: Data(try queries.eventPageJSON(after: 0, limit: 1000)))
        let byID = Dictionary(
            uniqueKeysWithValues: entries.compactMap { entry -> (Int64, String)? in
                guard case .number(let id)? = entry["event_id"], case .string(let chain)? = entry["chain"],
                    let number = Int64(id)
                else { return nil }
                return (number, chain)
            })
        #expect(plain.events.allSatisfy { $0.chain != nil && $0.chain == byID[$0.eventId] })
        // Admitted writes: the typed record, encoded as the API does, recomputes too.
        var request = AuditChain.zero
        for record in try queries.apiRequests(after: 0, limit: 10).items {
            var unchained = record
            unchained.chain = nil
            request = AuditChain.link(
                request, try StrictJSON.parse(Array(try APIJSON.encoder().encode(unchained))).canonical())
            #expect(SHA256.hexString(request) == record.chain)
        }
    }

    @Test(arguments: ["edit", "delete", "insert", "rewind"])
    func verifyNamesTheFirstAlteredRow(_ change: String) throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        _ = try recorded(path)
        let connection = try SQLiteConnection(path: path)
        let target = try #require(
            try connection.scalar("SELECT min(event_id) FROM conversions WHERE decision = 'denied'"))
        let expected: Int64
        switch change {
        case "edit":
            try connection.execute("UPDATE conversions SET decision = 'applied' WHERE event_id = \(target)")
            expected = target
        case "delete":
            try connection.execute("DELETE FROM conversions WHERE event_id = \(target)")
            expected = try #require(
                try connection.scalar("SELECT min(event_id) FROM memory_faults WHERE event_id > \(target)"))
        case "insert":
            try connection.execute(
                """
                INSERT INTO memory_faults (event_id, vm_id, vcpu, time_ns, gpa, size, flags, source) VALUES (100000, 1, 0, 1, 0, 4096, 0, 'kvm')
                """)
            expected = 100000
        default:
            // A finished conversion set back to pending, to hide what follows from the chain.
            try connection.execute("UPDATE conversions SET decision = 'pending' WHERE event_id = \(target)")
            expected = target
        }
        let problem = try #require(try Maintenance.verify(path: path).first?.problem)
        #expect(problem.id == expected || (change == "rewind" && problem.id > target), "\(problem)")
    }

    /// A prune cuts a prefix and leaves the cut's value as the genesis: what stays still verifies.
    @Test func pruneLeavesAVerifiableGenesis() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        _ = try recorded(path)
        let before = try EventQueries(path: path).auditHead()
        let report = try Maintenance.prune(path: path, olderThan: 145)
        #expect(report.faults + report.conversions + report.lifecycle > 0 && report.apiRequests == 1)
        let after = try EventQueries(path: path).auditHead()
        let genesis = try #require(after.events.genesis)
        #expect(after.events.lastId == before.events.lastId && after.events.chain == before.events.chain)
        #expect(
            genesis.pruned == Int64(report.faults + report.conversions + report.lifecycle) && genesis.firstNs == 100)
        #expect(after.requests.genesis?.pruned == 1)
        #expect(try Maintenance.verify(path: path).map(\.problem) == [nil, nil])
        // The genesis itself is protected by the heads others keep: a verify from an edited genesis fails.
        try SQLiteConnection(path: path).execute(
            "UPDATE chain_genesis SET chain = '\(String(repeating: "0", count: 64))' WHERE chain_name = 'events'")
        #expect(try Maintenance.verify(path: path).first?.problem != nil)
    }
}
