import CKVM
import CLinux
import Synchronization

/// Kicks a vCPU out of `KVM_RUN` from another thread: sets `immediate_exit`
/// (so a vCPU about to enter returns at once) and signals its thread (so a
/// running one is interrupted). Either way `KVM_RUN` returns EINTR.
public final class VCPUKicker: @unchecked Sendable {
    /// The kvm_run page; only `immediate_exit` is touched, atomically.
    private let run: UnsafeMutableRawPointer
    private let thread = Mutex<UInt64?>(nil)

    init(run: UnsafeMutableRawPointer) {
        self.run = run
    }

    /// Records the calling thread as the one running this vCPU and lets the
    /// kick signal reach it.
    public func bindCurrentThread() {
        _ = ckvm_unblock_kick_signal()
        thread.withLock { $0 = clinux_pthread_self() }
    }

    public func unbindThread() {
        thread.withLock { $0 = nil }
    }

    public func kick() {
        // Safety: run stays mapped as long as the owning VCPU, which owns this kicker.
        ckvm_store_immediate_exit(run, 1)
        thread.withLock { bound in
            if let bound { _ = clinux_pthread_kill(bound, ckvm_kick_signal()) }
        }
    }

    /// True when called on the thread running this vCPU (it needs no kick: it is not in KVM_RUN).
    public var isCurrentThread: Bool {
        thread.withLock { $0 == clinux_pthread_self() }
    }

    /// Called by the vCPU thread after it has seen the kick.
    public func clear() {
        // Safety: as in kick().
        ckvm_store_immediate_exit(run, 0)
    }

    /// Installs the process-wide no-op handler for the kick signal (idempotent).
    public static let installSignalHandler: Void = {
        _ = ckvm_install_kick_handler()
    }()
}
