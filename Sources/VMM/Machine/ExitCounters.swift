import KVM
import Synchronization

/// Nanoseconds a VM's vCPUs spent inside KVM_RUN.
final class RunTimer: Sendable {
    private let total = Atomic<UInt64>(0)
    func add(_ nanos: UInt64) { total.add(nanos, ordering: .relaxed) }
    var nanos: UInt64 { total.load(ordering: .relaxed) }
}

/// KVM_RUN exits by kind, for metrics: one counter set per vCPU, so the lock is never contended.
final class ExitCounters: Sendable {
    private final class Counters: Sendable {
        let values = Mutex([UInt64](repeating: 0, count: VCPUExit.Kind.allCases.count))
    }
    private let perVCPU: [Counters]

    init(vcpus: Int) {
        perVCPU = (0..<max(vcpus, 1)).map { _ in Counters() }
    }

    func count(_ kind: VCPUExit.Kind, vcpu: Int) {
        perVCPU[vcpu % perVCPU.count].values.withLock { $0[kind.rawValue] &+= 1 }
    }

    /// Every kind with its total over all vCPUs, in the kinds' order.
    var snapshot: [(kind: String, count: UInt64)] {
        var totals = [UInt64](repeating: 0, count: VCPUExit.Kind.allCases.count)
        for counters in perVCPU {
            counters.values.withLock { for (index, value) in $0.enumerated() { totals[index] &+= value } }
        }
        return VCPUExit.Kind.allCases.map { ($0.name, totals[$0.rawValue]) }
    }
}
