import Foundation
import KVM

/// Coordinates a VM's vCPU threads with its lifecycle: pausing parks every
/// running vCPU thread, stopping ends them, and the first terminal event wins.
final class VMControl: @unchecked Sendable {
    /// What vCPU threads should do when kicked out of KVM_RUN.
    enum Directive { case run, pause, stop }

    // All fields below are guarded by `condition`.
    private let condition = NSCondition()
    private var lifecycle = VMLifecycle()
    private var directive = Directive.run
    private var liveThreads = 0
    private var parkedThreads = 0
    private let kickers: [VCPUKicker]

    init(kickers: [VCPUKicker]) {
        self.kickers = kickers
    }

    private func locked<T>(_ body: () throws(LifecycleError) -> T) throws(LifecycleError) -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    var snapshot: VMLifecycle {
        condition.lock()
        defer { condition.unlock() }
        return lifecycle
    }

    private func kickAll() { for kicker in kickers { kicker.kick() } }

    /// Moves to running; the caller then starts `threads` vCPU threads.
    func start(threads: Int) throws(LifecycleError) {
        try locked { () throws(LifecycleError) in
            try lifecycle.apply(.start)
            liveThreads = threads
        }
    }

    /// Called by a vCPU thread after an EINTR exit. Parks while paused;
    /// returns false when the thread must end.
    func checkpoint() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while directive == .pause {
            parkedThreads += 1
            condition.broadcast()
            condition.wait()
            parkedThreads -= 1
        }
        return directive == .run
    }

    /// Called once by each vCPU thread as it ends.
    func threadEnded() {
        condition.lock()
        defer { condition.unlock() }
        liveThreads -= 1
        if liveThreads == 0 && !lifecycle.state.isTerminal {
            try? lifecycle.apply(.allVCPUsHalted)
        }
        condition.broadcast()
    }

    /// A terminal event from inside the VM: the first one decides the outcome.
    func finish(_ event: VMTransition) {
        condition.lock()
        defer { condition.unlock() }
        if !lifecycle.state.isTerminal { try? lifecycle.apply(event) }
        directive = .stop
        kickAll()
        condition.broadcast()
    }

    /// Returns once every live vCPU thread is parked.
    func pause() throws(LifecycleError) {
        try locked { () throws(LifecycleError) in
            guard lifecycle.state == .running else { throw LifecycleError(state: lifecycle.state, event: "pause") }
            directive = .pause
            kickAll()
            while parkedThreads < liveThreads && !lifecycle.state.isTerminal { condition.wait() }
            if lifecycle.state.isTerminal { throw LifecycleError(state: lifecycle.state, event: "pause") }
            try lifecycle.apply(.pause)
        }
    }

    func resume() throws(LifecycleError) {
        try locked { () throws(LifecycleError) in
            try lifecycle.apply(.resume)
            directive = .run
            condition.broadcast()
        }
    }

    /// Stops the VM (if it has not ended) and waits for its vCPU threads.
    /// Returns false when it had already ended.
    @discardableResult
    func stop(reason: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        var stoppedNow = false
        if !lifecycle.state.isTerminal {
            try? lifecycle.apply(.stop(reason: reason))
            stoppedNow = true
        }
        directive = .stop
        kickAll()
        condition.broadcast()
        while liveThreads > 0 { condition.wait() }
        return stoppedNow
    }

    /// Waits until the VM ended and all its threads are gone; false on timeout.
    func waitUntilFinished(deadline: Date?) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !(lifecycle.state.isTerminal && liveThreads == 0) {
            if let deadline {
                if !condition.wait(until: deadline) { return lifecycle.state.isTerminal && liveThreads == 0 }
            } else {
                condition.wait()
            }
        }
        return true
    }
}
