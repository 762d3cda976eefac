import KVM

/// A fake capability source for pure tests of the mask and the backend choice.
public enum FakeKVMAnswers {
    /// `KVM_CHECK_EXTENSION` answers of a host with every capability MemGate uses; `vmTypes` is the VM_TYPES mask.
    public static func everything(vmTypes: Int32) -> [Capability: Int32] {
        [
            .guestMemfd: 1, .guestMemfdFlags: Int32(GuestMemfdFlag.mmap | GuestMemfdFlag.initShared),
            .memoryAttributes: Int32(MemoryAttribute.private), .vmTypes: vmTypes, .memoryFaultInfo: 1,
            .userMemory2: 1, .preFaultMemory: 1, .exitHypercall: 1 << 12, .syncRegs: 7,
            .nrVCPUs: 2, .nrMemslots: 32764, .maxVCPUs: 1024, .immediateExit: 1,
        ]
    }
}
