import MemoryModel

/// A guest's `mg_sync(point, a0, a1, a2, a3)`: the vCPU waits while the host acts.
public struct SyncRequest: Sendable, Equatable {
    public var vcpu: UInt32
    public var point: UInt32
    public var arguments: [UInt64]
}

/// The host side of sync points; returns the value the guest reads back (0 = ok).
public struct SyncHandler: Sendable {
    public let handle: @Sendable (SyncRequest, GuestMemoryView) -> UInt64

    public init(_ handle: @escaping @Sendable (SyncRequest, GuestMemoryView) -> UInt64) {
        self.handle = handle
    }
}

/// The host's view of a VM's memory: what a VMM may read and write, and discards.
public struct GuestMemoryView: Sendable {
    let engine: ConversionEngine

    /// The shared copy of `gpa` (the host's view of shared memory), whatever the page's state.
    public func readShared(gpa: UInt64, count: Int) -> [UInt8]? {
        engine.backend.read(gpa: gpa, count: count, as: .shared)
    }

    public func writeShared(_ bytes: [UInt8], gpa: UInt64) -> Bool {
        engine.backend.write(bytes, gpa: gpa, as: .shared)
    }

    /// What the guest sees at `gpa` now: the copy its current state selects.
    public func read(gpa: UInt64, count: Int) -> [UInt8]? {
        let state = engine.pageStates.state(at: gpa) ?? .private
        return engine.backend.read(gpa: gpa, count: count, as: state)
    }

    public func state(at gpa: UInt64) -> PageState? { engine.pageStates.state(at: gpa) }

    /// Frees the private or shared copy of a data-RAM range (like the selftest's fallocate).
    public func discard(_ range: PageRange, copy: PageState) throws(BackendError) {
        try engine.backend.discard(range, copy: copy)
    }
}
