import KVM
import MemoryModel

/// A KVM memory slot as MemGate lays guest memory out.
public struct Memslot: Sendable, Equatable, CustomStringConvertible {
    public enum Store: String, Sendable, Equatable {
        /// Boot-region memory: ordinary anonymous memory.
        case boot
        /// Where private pages live (guest_memfd, or memfd without it).
        case privateStore = "private"
        /// Where shared pages live (memfd the host can read).
        case sharedStore = "shared"
        /// Attributes backend: private pages from guest_memfd, shared ones from the shared store,
        /// chosen per page by KVM_SET_MEMORY_ATTRIBUTES.
        case attributed
        /// `protect` alias mechanism: the private store through the guest's own mapping,
        /// whose page protections follow page state.
        case privateView = "private-view"
        /// The same for the shared store, at the shared alias.
        case sharedView = "shared-view"
    }

    public var slot: UInt32
    public var gpa: UInt64
    public var size: UInt64
    public var store: Store
    /// Offset of the slot's first byte in its store.
    public var offset: UInt64

    public var description: String {
        "slot \(slot) gpa 0x\(String(gpa, radix: 16)) +0x\(String(size, radix: 16)) \(store.rawValue)@0x\(String(offset, radix: 16))"
    }
}

/// Every call that changes KVM's view of guest memory or frees backing pages.
/// The real implementation issues ioctls; tests substitute a recorder.
public protocol MemoryOps: AnyObject, Sendable {
    func create(_ slot: Memslot) throws(KVMError)
    func delete(_ slot: Memslot) throws(KVMError)
    /// `KVM_SET_MEMORY_ATTRIBUTES` (attributes backend only).
    func setAttributes(_ range: PageRange, private: Bool) throws(KVMError)
    /// Frees private copies (punch hole in guest_memfd); offsets into the private store.
    func discardPrivate(offset: UInt64, length: UInt64) throws(KVMError)
    /// Frees shared copies; offsets into the shared store.
    func discardShared(offset: UInt64, length: UInt64) throws(KVMError)
    /// Opens or closes a data-RAM range in the guest's view of the `state` store
    /// (`protect` mechanism: `mprotect` of the mapping behind that alias's memslot).
    func setAccess(_ range: PageRange, view state: PageState, open: Bool) throws(KVMError)
}
