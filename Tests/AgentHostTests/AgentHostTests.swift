import AgentHost
import EventStore
import Foundation
import KVM
import Logging
import MemoryModel
import Platform
import SQLite
import TestSupport
import Testing
import VMM

let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

func temporaryDatabase() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("memgate-host-\(UUID().uuidString).db").path
}

func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-ring", ".lock"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}

func spec(_ guest: String, name: String? = nil, arg: String = "", timeout: Duration? = nil) throws -> VMSpec {
    var spec = VMSpec(name: name ?? guest, imageName: "\(guest).elf", image: try TestSupport.guestBytes(guest))
    spec.memoryMib = 32
    spec.commandLine = arg
    spec.timeout = timeout
    return spec
}

func rows(_ path: String, _ sql: String) throws -> [[SQLValue]] {
    try SQLiteConnection(path: path, readOnly: true).query(sql)
}

/// AgentHost on the real /dev/kvm with a real SQLite store.
@Suite(.enabled(if: TestSupport.kvmAvailable, "requires /dev/kvm (read-write) on this host"))
struct AgentHostTests {
    /// An ended VM keeps its record, map and console until DELETE, but not its RAM.
    @Test func anEndedVMGivesItsMemoryBack() throws {
        let host = AgentHost(system: try KVM.System(), store: nil, policies: PolicyStore(), logger: quiet)
        let vm = try host.create(try spec("hello"), start: false)
        // The loaded image: non-zero bytes in the boot region (the ELF is linked at 1 MiB).
        let machine = try #require(vm.machine, "a host without VM processes holds its VMs in this process")
        let image = machine.readMemory(at: 0x10_0000, count: 4096)
        #expect(image.contains { $0 != 0 })
        try host.start(vm.id)
        vm.waitUntilRecorded()
        #expect(vm.lifecycle.exitStatus == 0)
        #expect(machine.readMemory(at: 0x10_0000, count: 4096).allSatisfy { $0 == 0 })
        #expect(machine.console(from: 0).bytes.count > 0)
        try host.delete(vm.id)
    }

    @Test func namesAndLabelsMustBePrintable() throws {
        // Non-characters cannot be written as Swift literals: built from their scalars.
        func scalar(_ value: UInt32) -> String { Unicode.Scalar(value).map { String(Character($0)) } ?? "" }
        for bad in ["a\u{1B}[2J", "a\u{9B}2J", "x" + scalar(0xFFFE), "x\u{202E}cba", "x\u{7F}", scalar(0xFDD0)] {
            var candidate = try spec("hello", name: bad)
            #expect(throws: AgentHostError.self, "\(bad.unicodeScalars.map { String($0.value, radix: 16) })") {
                try candidate.validate()
            }
            candidate.name = "ok"
            candidate.labels = ["team": bad]
            #expect(throws: AgentHostError.self) { try candidate.validate() }
            candidate.labels = [bad: "v"]
            #expect(throws: AgentHostError.self) { try candidate.validate() }
        }
        var fine = try spec("hello", name: "tenant-a/web 1 ünïcode 名前")
        fine.labels = ["team": "a", "empty": ""]
        try fine.validate()
        fine.memoryMib = 2
        #expect(throws: AgentHostError.self) { try fine.validate() }
        fine.memoryMib = VMSpec.minMemoryMib
        try fine.validate()
    }

    @Test func everyEndIsRecordedOnItsPath() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: quiet)
        let host = AgentHost(system: try KVM.System(), store: store, policies: PolicyStore(), logger: quiet)
        let exited = try host.create(try spec("hello"), start: true)
        let crashed = try host.create(try spec("crash"), start: true)
        let faulted = try host.create(try spec("implicit", name: "faulting"), start: false)
        host.policies.replace(with: try VersionedPolicy(document: Array(#"{"defaults":{"implicit":"deny"}}"#.utf8)))
        try host.start(faulted.id)
        let timedOut = try host.create(try spec("spin-io", arg: "forever", timeout: .milliseconds(200)), start: true)
        let stopped = try host.create(try spec("spin-io", name: "stopped", arg: "forever"), start: true)
        let neverStarted = try host.create(try spec("hello", name: "never"), start: false)
        for vm in [exited, crashed, faulted, timedOut] { vm.waitUntilRecorded() }
        try host.stop(stopped.id)
        try host.delete(neverStarted.id)
        #expect(host.vm(neverStarted.id) == nil)
        #expect(timedOut.timedOut)
        store.close()

        let ended = try rows(path, "SELECT vm_id, final_state, final_reason, exit_status FROM vms ORDER BY vm_id")
        #expect(ended.count == 6)
        func state(_ vm: ManagedVM) -> String? {
            ended.first { $0[0] == .integer(vm.id) }.flatMap { if case .text(let s) = $0[1] { s } else { nil } }
        }
        #expect(state(exited) == "stopped")
        #expect(state(crashed) == "crashed")
        #expect(state(faulted) == "faulted")
        #expect(state(timedOut) == "stopped")
        #expect(state(stopped) == "stopped")
        #expect(state(neverStarted) == "stopped")
        #expect(try rows(path, "SELECT count(*) FROM vms WHERE ended_ns IS NULL").first?.first == .integer(0))
        #expect(
            try rows(path, "SELECT final_reason FROM vms WHERE vm_id = \(timedOut.id)").first?.first.map { "\($0)" }?
                .contains("timeout") == true)
    }

    @Test func idsAreNeverReusedAndNamesAreUnique() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        var ids: [Int64] = []
        for round in 0..<2 {
            let store = try EventStore(path: path, logger: quiet)
            let host = AgentHost(system: try KVM.System(), store: store, policies: PolicyStore(), logger: quiet)
            for index in 0..<2 {
                let vm = try host.create(try spec("implicit", name: "vm-\(round)-\(index)"), start: true)
                vm.waitUntilRecorded()
                ids.append(vm.id)
                // A name addresses one VM among those not deleted: a second is refused, naming the first.
                #expect(throws: AgentHostError.nameTaken("vm-\(round)-\(index)", id: vm.id)) {
                    try host.create(try spec("implicit", name: "vm-\(round)-\(index)"), start: true)
                }
            }
            store.close()
            // Deleting the newest VM and its events (a prune) must not free their ids.
            _ = try Maintenance.prune(path: path, olderThan: MonotonicClock.wallNanos() + 1)
        }
        #expect(ids == ids.sorted() && Set(ids).count == 4)
        let store = try EventStore(path: path, logger: quiet)
        let host = AgentHost(system: try KVM.System(), store: store, policies: PolicyStore(), logger: quiet)
        let next = try host.create(try spec("implicit", name: "after-prune"), start: true)
        next.waitUntilRecorded()
        store.close()
        #expect(next.id > ids.max() ?? 0)
        let firstEvent = try rows(path, "SELECT min(event_id) FROM memory_faults").first?.first
        // Two implicit conversions per run (4 events) and the VM's created, started and ended:
        // 4 pruned runs used ids 1...28; the next VM's created and started took 29 and 30.
        #expect(firstEvent == .integer(31))
    }

    @Test func aVMLeftRunningByADeadAgentIsClosedAsLost() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        do {
            let store = try EventStore(path: path, logger: quiet)
            let id = try store.register(
                VMRegistration(
                    name: "orphan", memoryBytes: 32 << 20, vcpus: 1, backend: "alias",
                    dataRAM: PageRange(start: 0x20_0000, end: 0x200_0000), initialState: .private),
                createdNanos: 1)
            let pending = store.begin(
                conversion: ConversionRecord(
                    vmID: id, vm: "orphan", vcpu: 0, requestedNanos: 2, completedNanos: nil, gpa: 0x30_0000, size: 4096,
                    direction: .toShared, trigger: .explicit, decision: .pending, reason: "default explicit allow",
                    policyVersion: VersionedPolicy.builtIn.version, source: .emulated, discardedBytes: 0, guestResult: 0
                ))
            #expect(pending.receipt.wait() == nil)
            store.close()  // the agent "dies": no end recorded, the conversion stays pending
        }
        let reopened = try EventStore(path: path, logger: quiet)
        #expect(reopened.recovered == EventStore.RecoveryReport(vms: 1, incompleteConversions: 1))
        reopened.close()
        #expect(try rows(path, "SELECT final_state FROM vms").first?.first == .text("lost"))
        #expect(try rows(path, "SELECT decision FROM conversions").first?.first == .text("incomplete"))
    }

    @Test func lifecycleConflictsAreErrorsNotTraps() throws {
        let host = AgentHost(system: try KVM.System(), store: nil, policies: PolicyStore(), logger: quiet)
        let vm = try host.create(try spec("spin-io", arg: "forever"), start: true)
        #expect(throws: AgentHostError.self) { try host.delete(vm.id) }
        #expect(throws: AgentHostError.self) { try host.start(vm.id) }
        #expect(throws: AgentHostError.self) { try host.resume(vm.id) }
        try host.pause(vm.id)
        #expect(vm.lifecycle.state == .paused)
        try host.resume(vm.id)
        try host.stop(vm.id)
        #expect(throws: AgentHostError.self) { try host.pause(vm.id) }
        try host.delete(vm.id)
        #expect(throws: AgentHostError.notFound(vm.id)) { try host.stop(vm.id) }
        var bad = try spec("hello")
        bad.vcpus = 0
        #expect(throws: AgentHostError.invalid(field: "vcpus", message: "must be from 1 to 64")) {
            try host.create(bad, start: true)
        }
        bad = try spec("hello")
        bad.image = Array("not an elf".utf8)
        #expect(throws: AgentHostError.self) { try host.create(bad, start: true) }
        #expect(host.vms.isEmpty)
    }

    @Test func shutdownEndsEveryVMAndRefusesNewOnes() throws {
        let path = temporaryDatabase()
        defer { removeDatabase(path) }
        let store = try EventStore(path: path, logger: quiet)
        let host = AgentHost(system: try KVM.System(), store: store, policies: PolicyStore(), logger: quiet)
        _ = try host.create(try spec("spin-io", arg: "forever"), start: true)
        _ = try host.create(try spec("spin-io", name: "second", arg: "forever"), start: true)
        _ = try host.create(try spec("hello", name: "created"), start: false)
        host.shutdown()
        #expect(throws: AgentHostError.shuttingDown) { try host.create(try spec("hello"), start: true) }
        store.close()
        #expect(
            try rows(path, "SELECT count(*) FROM vms WHERE ended_ns IS NULL OR final_state IS NULL").first?.first
                == .integer(0))
        #expect(
            try rows(path, "SELECT count(*) FROM conversions WHERE decision = 'pending'").first?.first == .integer(0))
    }

    @Test func policyReplacementIsCompareAndSwap() throws {
        let host = AgentHost(system: try KVM.System(), store: nil, policies: PolicyStore(), logger: quiet)
        let original = host.policies.policy.version
        let deny = try VersionedPolicy(document: Array(#"{"defaults":{"explicit":"deny"}}"#.utf8))
        #expect(
            try host.replacePolicy(deny, expected: original, change: PolicyChange(principal: "test", channel: "api")))
        #expect(throws: AgentHost.PolicyReplaceError.versionMismatch(current: deny.version)) {
            try host.replacePolicy(
                .builtIn, expected: original, change: PolicyChange(principal: "test", channel: "api"))
        }
        #expect(
            try !host.replacePolicy(
                deny, expected: deny.version, change: PolicyChange(principal: "test", channel: "api")))
        #expect(
            try !host.replacePolicy(deny, expected: original, change: PolicyChange(principal: "test", channel: "api")),
            "a write of what is already in force is done, whatever its tag (a retried PUT whose answer was lost)")
    }
}
