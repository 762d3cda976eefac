import CGuestABI
import CKVM
import KVM
import MemoryModel
import Testing

/// MemoryModel keeps its own copies of a few KVM and guest-ABI numbers (it stays free of C).
/// Each must equal the one in `ckvm.h` or `memgate_abi.h`, the project's sources of the ABI.
struct KVMABIPinTests {
    @Test func guestErrorCodesAreKVMsErrnos() {
        #expect(GuestErrorCode.invalid.rawValue == -Int64(CKVM_EINVAL))
        #expect(GuestErrorCode.permission.rawValue == -Int64(CKVM_EPERM))
        #expect(GuestErrorCode.notSupported.rawValue == -Int64(CKVM_ENOSYS))
        #expect(GuestErrorCode.tooBig.rawValue == -Int64(CKVM_E2BIG))
    }

    @Test func mapGPARangeBitsAndFlags() {
        #expect(MapGPARangeCall.encrypted == UInt64(CKVM_MAP_GPA_RANGE_ENCRYPTED))
        #expect(MapGPARangeCall.pageSizeMask == UInt64(CKVM_MAP_GPA_RANGE_PAGE_SZ_MASK))
        #expect(MemoryFaultRecord.flagPrivate == UInt64(CKVM_MEMORY_EXIT_FLAG_PRIVATE))
        #expect(MemoryFaultRecord.flagPrivate == MemoryFaultExit.flagPrivate)
        #expect(FaultAccess.flagRead == UInt64(CKVM_MEMORY_EXIT_FLAG_READ))
        #expect(FaultAccess.flagWrite == UInt64(CKVM_MEMORY_EXIT_FLAG_WRITE))
        #expect(FaultAccess.flagExec == UInt64(CKVM_MEMORY_EXIT_FLAG_EXEC))
        #expect(Hypercall.mapGPARange == UInt64(CKVM_HC_MAP_GPA_RANGE))
    }

    /// The page the model counts in is the one the guest SDK converts in.
    @Test func thePageSizeIsTheGuestABIs() {
        #expect(PageRange.pageSize == UInt64(MG_PAGE_SIZE))
    }

    @Test func capabilityAndVMTypeNumbersComeFromTheHeader() {
        #expect(Capability.memoryFaultInfo.rawValue == CKVM_CAP_MEMORY_FAULT_INFO)
        #expect(Capability(rawValue: 235) == .vmTypes)
        #expect(Capability(rawValue: 1) == nil)
        #expect(VMType.tdx.rawValue == 5 && VMType(rawValue: 1) == .swProtected)
        #expect(Set(Capability.allCases.map(\.rawValue)).count == Capability.allCases.count)
    }
}
