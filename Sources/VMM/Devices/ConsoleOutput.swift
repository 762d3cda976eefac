import Synchronization

/// A VM's console: a bounded ring of recent output, plus an optional live
/// stream (e.g. stdout in `memgate-agent run`) fed through a bounded queue.
/// Output is emitted line by line per vCPU and serialized, so lines from
/// different vCPUs stay whole. No lock here is ever held across a write.
final class ConsoleOutput: Sendable {
    private struct State {
        var ring: ConsoleRing
        var lines: ConsoleLineBuffer
    }

    private let state: Mutex<State>
    private let streamer: ConsoleStreamer?

    /// Bytes of live stream a slow consumer may be behind before output is dropped.
    static let streamQueueCapacity = 1 << 20

    init(capacity: Int, vcpuCount: Int, name: String, stream: ConsoleStreamer.Sink?) {
        state = Mutex(State(ring: ConsoleRing(capacity: capacity), lines: ConsoleLineBuffer(vcpuCount: vcpuCount)))
        streamer = stream.map { ConsoleStreamer(capacity: Self.streamQueueCapacity, name: name, sink: $0) }
    }

    /// Ends the live stream (waits briefly for a consumer that is reading).
    func finishStream(timeout: Duration = .seconds(2)) { streamer?.finish(timeout: timeout) }

    /// Live-stream bytes dropped because the consumer was too slow or went away.
    var droppedStreamBytes: Int { streamer?.droppedBytes ?? 0 }

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
        streamer?.offer(bytes)
    }

    var contents: [UInt8] { state.withLock { $0.ring.contents } }

    func read(from offset: Int) -> (start: Int, bytes: [UInt8], dropped: Int) {
        state.withLock { $0.ring.read(from: offset) }
    }

    var totalBytes: Int { state.withLock { $0.ring.totalBytes } }
}
