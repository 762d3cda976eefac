import KVM
import MemoryModel

/// The host memory behind a VM's RAM: the boot region, and data RAM's private
/// and shared stores (each indexed by offset from the start of data RAM).
public struct GuestStores: Sendable {
    public let bootRegion: HostMemory
    public let dataRAM: PageRange
    /// guest_memfd holding private pages, when the host has it.
    public let privateFile: GuestMemfd?
    /// A mapping of the private store, when the host may map it (mmap-able guest_memfd or memfd).
    public let privateMemory: HostMemory?
    public let sharedMemory: HostMemory
    /// `protect` mechanism: second mappings of the private and shared stores, bound
    /// into the memslots, whose protections follow page state. The host itself
    /// always uses `privateMemory`/`sharedMemory`, which stay open.
    public var guestViews: GuestViews? = nil

    public struct GuestViews: Sendable {
        public let privateView: HostMemory
        public let sharedView: HostMemory
    }

    /// Gives the RAM of a VM that has ended back to the host (it reads back as zeroes):
    /// an ended VM is kept for its record and its page-state map, not its bytes.
    public func release() throws(KVMError) {
        try bootRegion.discardFile(at: 0, count: bootRegion.size)
        try sharedMemory.discardFile(at: 0, count: sharedMemory.size)
        if let privateMemory {
            try privateMemory.discardFile(at: 0, count: privateMemory.size)
        } else if let privateFile {
            try privateFile.punchHole(offset: 0, length: UInt64(dataRAM.size))
        }
    }

    /// The store a page in `state` lives in, and the offset of `gpa` inside it.
    func location(of gpa: UInt64, count: Int, as state: PageState) -> (HostMemory, Int)? {
        if gpa + UInt64(count) <= UInt64(bootRegion.size) { return (bootRegion, Int(gpa)) }
        guard dataRAM.contains(PageRange(start: gpa, size: UInt64(count))) else { return nil }
        let offset = Int(gpa - dataRAM.start)
        switch state {
        case .private: return privateMemory.map { ($0, offset) }
        case .shared: return (sharedMemory, offset)
        }
    }
}
