import Foundation
import KVM
import Synchronization

/// Holds a VM's vCPUs outside KVM_RUN while memslots they may be using are
/// rewritten. KVM's memslot updates are not atomic: between a delete and the
/// re-create, every vCPU touching the range would exit. QEMU does the same
/// (`kvm_region_commit` with `accel_ioctl_inhibit_begin/end`).
///
/// vCPU threads bracket KVM_RUN with `enter`/`leave` (two atomic operations on
/// the fast path); the rewriting thread closes the gate, kicks everyone out,
/// waits until nobody is inside, and reopens it when done.
final class RunGate: @unchecked Sendable {
    private let inside = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    /// Serializes rewriters.
    private let rewriters = Mutex<Void>(())
    /// Wakes waiters on the slow paths only.
    private let condition = NSCondition()
    private let kickers: [VCPUKicker]

    init(kickers: [VCPUKicker]) {
        self.kickers = kickers
    }

    /// Called by a vCPU thread right before KVM_RUN; waits while the gate is closed.
    func enter() {
        while true {
            inside.add(1, ordering: .sequentiallyConsistent)
            if !closed.load(ordering: .sequentiallyConsistent) { return }
            leave()
            condition.lock()
            while closed.load(ordering: .sequentiallyConsistent) { condition.wait() }
            condition.unlock()
        }
    }

    /// Called by a vCPU thread right after KVM_RUN returns.
    func leave() {
        let (_, remaining) = inside.subtract(1, ordering: .sequentiallyConsistent)
        if remaining == 0 && closed.load(ordering: .sequentiallyConsistent) {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Runs `body` with no vCPU of the VM inside KVM_RUN. The caller is a vCPU
    /// thread handling an exit (so not inside itself) or any other thread.
    func withVCPUsOutsideKVM<E: Error>(_ body: () throws(E) -> Void) throws(E) {
        try rewriters.withLock { _ throws(E) in
            closed.store(true, ordering: .sequentiallyConsistent)
            // A vCPU about to enter sees immediate_exit; one inside is interrupted by the signal.
            for kicker in kickers where !kicker.isCurrentThread { kicker.kick() }
            condition.lock()
            while inside.load(ordering: .sequentiallyConsistent) > 0 { condition.wait() }
            condition.unlock()
            defer {
                closed.store(false, ordering: .sequentiallyConsistent)
                condition.lock()
                condition.broadcast()
                condition.unlock()
            }
            try body()
        }
    }
}
