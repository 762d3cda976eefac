import CKVM
import Glibc

/// A KVM virtual machine fd: memory slots, attributes, guest_memfd, vCPUs.
///
/// The caller keeps every `HostMemory` / `GuestMemfd` it registers alive for as
/// long as the slot exists; KVM holds only addresses and fds.
public final class VM: Sendable {
    public let fd: FileDescriptor
    public let type: VMType
    let vcpuMmapSize: Int
    /// What the `System` that made this VM hides; the calls that need it fail with EOPNOTSUPP.
    let hidden: HiddenCapabilities

    init(fd: FileDescriptor, type: VMType, vcpuMmapSize: Int, hidden: HiddenCapabilities) {
        self.fd = fd
        self.type = type
        self.vcpuMmapSize = vcpuMmapSize
        self.hidden = hidden
    }

    /// `KVM_CHECK_EXTENSION` on the VM fd (some answers depend on the VM type), hidden ones taken away.
    public func check(_ capability: Capability) -> Int32 {
        let answer = ckvm_check_extension(fd.rawValue, Int(capability.rawValue))
        return answer < 0 ? answer : hidden.answer(capability, host: answer)
    }

    public func enable(_ capability: Capability, args: [UInt64] = []) throws(KVMError) {
        if hidden.answer(capability, host: 1) == 0 {
            throw KVMError(
                "KVM_ENABLE_CAP(\(capability))", errno: EOPNOTSUPP,
                hint: "\(capability) is hidden by \(HiddenCapabilities.environmentVariable)")
        }
        var request = kvm_enable_cap()
        request.cap = UInt32(capability.rawValue)
        withUnsafeMutableBytes(of: &request.args) { raw in
            // Safety: args is a fixed array of four u64; at most four are copied.
            for (index, value) in args.prefix(4).enumerated() {
                raw.storeBytes(of: value, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        guard ckvm_enable_cap(fd.rawValue, &request) == 0 else {
            throw KVMError.last("KVM_ENABLE_CAP(\(capability))")
        }
    }

    /// Required by Intel VMX for real-mode emulation; harmless elsewhere.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        guard ckvm_set_tss_addr(fd.rawValue, UInt(address)) == 0 else { throw KVMError.last("KVM_SET_TSS_ADDR") }
    }

    /// Maps `size` bytes of `memory` from `offset` at `guestPhysicalAddress` (`KVM_SET_USER_MEMORY_REGION`).
    public func setMemoryRegion(
        slot: UInt32, guestPhysicalAddress: UInt64, size: UInt64,
        memory: HostMemory, offset: Int = 0, readOnly: Bool = false
    ) throws(KVMError) {
        var region = kvm_userspace_memory_region()
        region.slot = slot
        region.flags = readOnly ? UInt32(KVM_MEM_READONLY) : 0
        region.guest_phys_addr = guestPhysicalAddress
        region.memory_size = size
        region.userspace_addr = memory.hostAddress(at: offset)
        guard ckvm_set_user_memory_region(fd.rawValue, &region) == 0 else {
            throw KVMError.last(
                "KVM_SET_USER_MEMORY_REGION(slot \(slot), gpa 0x\(String(guestPhysicalAddress, radix: 16)))")
        }
    }

    /// `KVM_SET_USER_MEMORY_REGION2`, optionally binding private memory from a guest_memfd.
    public func setMemoryRegion2(
        slot: UInt32, guestPhysicalAddress: UInt64, size: UInt64,
        memory: HostMemory?, offset: Int = 0,
        guestMemfd: GuestMemfd?, guestMemfdOffset: UInt64 = 0
    ) throws(KVMError) {
        if hidden.hides(.userMemory2) {
            throw hidden.refusal("KVM_SET_USER_MEMORY_REGION2(slot \(slot))", .userMemory2)
        }
        var region = ckvm_userspace_memory_region2()
        region.slot = slot
        region.guest_phys_addr = guestPhysicalAddress
        region.memory_size = size
        region.userspace_addr = memory?.hostAddress(at: offset) ?? 0
        if let guestMemfd {
            region.flags = UInt32(CKVM_MEM_GUEST_MEMFD)
            region.guest_memfd = UInt32(bitPattern: guestMemfd.fd.rawValue)
            region.guest_memfd_offset = guestMemfdOffset
        }
        guard ckvm_set_user_memory_region2(fd.rawValue, &region) == 0 else {
            throw KVMError.last(
                "KVM_SET_USER_MEMORY_REGION2(slot \(slot), gpa 0x\(String(guestPhysicalAddress, radix: 16)))")
        }
    }

    /// Deletes a slot (a region of size 0).
    public func deleteMemoryRegion(slot: UInt32) throws(KVMError) {
        var region = kvm_userspace_memory_region()
        region.slot = slot
        guard ckvm_set_user_memory_region(fd.rawValue, &region) == 0 else {
            throw KVMError.last("KVM_SET_USER_MEMORY_REGION(delete slot \(slot))")
        }
    }

    /// `KVM_SET_MEMORY_ATTRIBUTES` over a page-aligned range.
    public func setMemoryAttributes(guestPhysicalAddress: UInt64, size: UInt64, attributes: UInt64) throws(KVMError) {
        if hidden.hides(.memoryAttributes) { throw hidden.refusal("KVM_SET_MEMORY_ATTRIBUTES", .memoryAttributes) }
        var request = ckvm_memory_attributes(
            address: guestPhysicalAddress, size: size, attributes: attributes, flags: 0)
        guard ckvm_set_memory_attributes(fd.rawValue, &request) == 0 else {
            throw KVMError.last("KVM_SET_MEMORY_ATTRIBUTES(0x\(String(guestPhysicalAddress, radix: 16)), \(size))")
        }
    }

    public func createGuestMemfd(size: UInt64, flags: UInt64 = 0) throws(KVMError) -> GuestMemfd {
        if hidden.hides(.guestMemfd) { throw hidden.refusal("KVM_CREATE_GUEST_MEMFD", .guestMemfd) }
        if flags & GuestMemfdFlag.mmap != 0, hidden.hides(.guestMemfdMmap) {
            throw hidden.refusal("KVM_CREATE_GUEST_MEMFD(flags \(flags))", .guestMemfdMmap)
        }
        var request = ckvm_create_guest_memfd()
        request.size = size
        request.flags = flags
        let raw = ckvm_create_guest_memfd(fd.rawValue, &request)
        guard raw >= 0 else { throw KVMError.last("KVM_CREATE_GUEST_MEMFD(\(size) bytes, flags \(flags))") }
        return GuestMemfd(fd: FileDescriptor(owning: raw), size: size, flags: flags)
    }

    public func createVCPU(index: UInt32) throws(KVMError) -> VCPU {
        let raw = ckvm_create_vcpu(fd.rawValue, UInt(index))
        guard raw >= 0 else { throw KVMError.last("KVM_CREATE_VCPU(\(index))") }
        return try VCPU(index: index, fd: FileDescriptor(owning: raw), runSize: vcpuMmapSize)
    }
}
