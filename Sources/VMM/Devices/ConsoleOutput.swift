import Synchronization

/// A VM's console: a bounded ring of recent output, plus an optional live
/// stream (e.g. stdout in `memgate-agent run`). Output is emitted line by
/// line per vCPU and serialized, so lines from different vCPUs stay whole.
final class ConsoleOutput: Sendable {
    private struct State {
        var ring: ConsoleRing
        var lines: ConsoleLineBuffer
    }

    private let state: Mutex<State>
    private let stream: (@Sendable ([UInt8]) -> Void)?

    init(capacity: Int, vcpuCount: Int, stream: (@Sendable ([UInt8]) -> Void)?) {
        state = Mutex(State(ring: ConsoleRing(capacity: capacity), lines: ConsoleLineBuffer(vcpuCount: vcpuCount)))
        self.stream = stream
    }

    func write(_ bytes: [UInt8], vcpu: Int) {
        state.withLock { state in emit(state.lines.append(bytes, vcpu: vcpu), into: &state) }
    }

    /// Emits a vCPU's partial line (called when its thread ends).
    func flush(vcpu: Int) {
        state.withLock { state in emit(state.lines.flush(vcpu: vcpu), into: &state) }
    }

    private func emit(_ bytes: [UInt8], into state: inout State) {
        guard !bytes.isEmpty else { return }
        state.ring.append(bytes)
        stream?(bytes)
    }

    var contents: [UInt8] { state.withLock { $0.ring.contents } }

    func read(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) {
        state.withLock { $0.ring.read(from: offset) }
    }

    var totalBytes: Int { state.withLock { $0.ring.totalBytes } }
}
