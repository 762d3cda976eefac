/// Assembles each vCPU's console bytes into whole lines, so output from
/// several vCPUs interleaves by line, not by byte (KVM delivers `REP OUTSB`
/// one byte per exit). Pure value type.
public struct ConsoleLineBuffer: Sendable {
    /// A partial line longer than this is emitted anyway.
    public let maxPending: Int
    private var pending: [[UInt8]]

    public init(vcpuCount: Int, maxPending: Int = 512) {
        self.maxPending = maxPending
        pending = Array(repeating: [], count: vcpuCount)
    }

    /// Adds `bytes` from `vcpu`; returns what is ready to emit (complete lines), possibly empty.
    public mutating func append(_ bytes: some Collection<UInt8>, vcpu: Int) -> [UInt8] {
        pending[vcpu].append(contentsOf: bytes)
        if let lastNewline = pending[vcpu].lastIndex(of: UInt8(ascii: "\n")) {
            let ready = Array(pending[vcpu][...lastNewline])
            pending[vcpu].removeSubrange(...lastNewline)
            return ready
        }
        if pending[vcpu].count >= maxPending { return flush(vcpu: vcpu) }
        return []
    }

    /// Whatever `vcpu` has pending, emitted now (its thread ended or the VM stopped).
    public mutating func flush(vcpu: Int) -> [UInt8] {
        defer { pending[vcpu].removeAll(keepingCapacity: true) }
        return pending[vcpu]
    }
}
