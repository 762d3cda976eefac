import BenchmarkSupport
import EventStore
import Foundation
import Logging
import MemoryModel
import Platform

/// The replay's history: eight VMs' explicit conversions recorded through the store's own
/// path, each VM sharing and taking back 4 KiB pages of its data RAM, 30 µs apart.
enum RecordedHistory {
    static let vms = 8
    static let dataRAM = PageRange(start: 0x20_0000, end: 0x400_0000)

    /// Denies sharing of the low 4 MiB of data RAM to VMs named `bench-0*`, and limits every
    /// VM to 8 MiB shared and 20,000 conversions a second: rules, both limits and the
    /// per-VM state all have work to do.
    static let candidate = """
        {"name":"bench-candidate","rules":[{"match":{"vm":"bench-0*","direction":"to_shared","gpa":["0x200000","0x600000"]},\
        "action":"deny","reason":"no sharing of low data RAM"}],\
        "limits":{"max_shared_bytes":8388608,"max_conversions_per_second":20000}}
        """

    static func write(conversions: Int, to path: String, logger: Logger) throws {
        let store = try EventStore(path: path, logger: logger)
        defer { store.close() }
        let start = MonotonicClock.wallNanos() - UInt64(conversions) * 30_000
        var ids: [Int64] = []
        for index in 0..<vms {
            ids.append(
                try store.register(
                    VMRegistration(
                        name: "bench-\(index / 4)\(index % 4)", memoryBytes: 64 << 20, vcpus: 1,
                        backend: "alias", dataRAM: dataRAM, initialState: .private),
                    createdNanos: start))
        }
        let pages = dataRAM.size / 4096 / 2
        for i in 0..<conversions {
            let vm = i % vms, round = UInt64(i / vms)
            // Each VM walks its pages, sharing one and then taking it back.
            let page = (round / 2) % pages
            let time = start + UInt64(i) * 30_000
            let record = ConversionRecord(
                vmID: ids[vm], vm: "bench-\(vm / 4)\(vm % 4)", vcpu: 0, requestedNanos: time,
                completedNanos: time + 20_000,
                gpa: dataRAM.start + page * 2 * 4096, size: 4096, direction: round % 2 == 0 ? .toShared : .toPrivate,
                trigger: .explicit, decision: .applied, reason: "default explicit allow",
                policyVersion: VersionedPolicy.builtIn.version,
                source: .emulated, changedBytes: 4096, discardedBytes: 4096, guestResult: 0)
            let receipt = store.record(conversion: record)
            // Now and then wait, so the writer's queue stays bounded.
            if i % 8192 == 8191, let failure = receipt.wait() { throw BenchmarkError("recording failed: \(failure)") }
        }
        store.flush()
    }
}
