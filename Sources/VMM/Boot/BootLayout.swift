import CGuestABI

/// Why a VM's memory layout cannot be built.
public enum BootError: Error, Equatable, Sendable, CustomStringConvertible {
    case vcpuCount(Int, max: Int)
    case ramSize(UInt64, reason: String)
    case sharedBit(Int, reason: String)
    case imageTooLarge(imageEnd: UInt64, bootRegionEnd: UInt64, ramSize: UInt64)
    case commandLineTooLong(bytes: Int, max: Int)
    case pageTablesTooLarge(pages: Int, max: Int)

    public var description: String {
        switch self {
        case .vcpuCount(let n, let max): return "vCPU count \(n) is outside 1...\(max)"
        case .ramSize(let size, let reason): return "RAM size \(size) bytes: \(reason)"
        case .sharedBit(let bit, let reason): return "shared bit \(bit): \(reason)"
        case .imageTooLarge(let end, let boot, let ram):
            return
                "guest image ends at 0x\(String(end, radix: 16)); with stacks the boot region needs 0x\(String(boot, radix: 16)) bytes but RAM is \(ram)"
        case .commandLineTooLong(let n, let max): return "command line is \(n) bytes, at most \(max) fit the boot info"
        case .pageTablesTooLarge(let n, let max): return "page tables need \(n) pages, the boot area holds \(max)"
        }
    }
}

/// Where everything lives in guest-physical memory (see Guests/include/memgate_abi.h).
public struct BootLayout: Sendable, Equatable {
    public static let pageSize = UInt64(MG_PAGE_SIZE)
    public static let largePageSize = UInt64(MG_LARGE_PAGE_SIZE)
    public static let maxVCPUs = Int(MG_MAX_VCPUS)
    public static let maxRAMSize = UInt64(MG_MAX_RAM_SIZE)
    public static let gdtAddress = UInt64(MG_GDT_ADDR)
    public static let tssAddress = UInt64(MG_TSS_ADDR)
    public static let pageTablesAddress = UInt64(MG_PAGE_TABLES_ADDR)
    public static let imageBase = UInt64(MG_IMAGE_BASE)
    public static let stackSize = UInt64(MG_STACK_SIZE)

    public let ramSize: UInt64
    public let vcpuCount: Int
    public let sharedBit: Int
    public let stacksBase: UInt64
    /// Boot region: [0, bootRegionSize), never convertible.
    public let bootRegionSize: UInt64

    public var sharedMask: UInt64 { 1 << UInt64(sharedBit) }
    public var dataRAM: Range<UInt64> { bootRegionSize..<ramSize }
    /// Where ELF segments may be loaded.
    public var loadableRange: Range<UInt64> { Self.imageBase..<ramSize }

    public func bootInfoAddress(vcpu: Int) -> UInt64 {
        UInt64(MG_BOOT_INFO_ADDR) + UInt64(vcpu) * UInt64(MG_BOOT_INFO_STRIDE)
    }
    public func stackTop(vcpu: Int) -> UInt64 { stacksBase + UInt64(vcpu + 1) * Self.stackSize }

    /// - Parameters:
    ///   - imageEnd: one past the image's last byte (`GuestImage.end`).
    ///   - physicalAddressBits: the guest CPU's MAXPHYADDR; the alias must fit below it.
    public init(
        ramSize: UInt64, vcpuCount: Int, sharedBit: Int, imageEnd: UInt64,
        physicalAddressBits: Int = 48
    ) throws(BootError) {
        guard (1...Self.maxVCPUs).contains(vcpuCount) else { throw .vcpuCount(vcpuCount, max: Self.maxVCPUs) }
        guard ramSize % Self.largePageSize == 0, ramSize > 0 else {
            throw .ramSize(ramSize, reason: "must be a non-zero multiple of 2 MiB")
        }
        guard ramSize <= Self.maxRAMSize else {
            throw .ramSize(ramSize, reason: "at most \(Self.maxRAMSize >> 30) GiB")
        }
        guard sharedBit < physicalAddressBits else {
            throw .sharedBit(
                sharedBit, reason: "must be below the guest's physical address width (\(physicalAddressBits) bits)")
        }
        guard sharedBit < 64, (UInt64(1) << UInt64(sharedBit)) >= ramSize else {
            throw .sharedBit(sharedBit, reason: "the alias (1 << bit) must lie above all of RAM (\(ramSize) bytes)")
        }
        let stacksBase = max(imageEnd, Self.imageBase).roundedUp(to: Self.pageSize)
        let bootEnd = (stacksBase + UInt64(vcpuCount) * Self.stackSize).roundedUp(to: Self.largePageSize)
        guard bootEnd <= ramSize else {
            throw .imageTooLarge(imageEnd: imageEnd, bootRegionEnd: bootEnd, ramSize: ramSize)
        }
        self.ramSize = ramSize
        self.vcpuCount = vcpuCount
        self.sharedBit = sharedBit
        self.stacksBase = stacksBase
        self.bootRegionSize = bootEnd
    }
}

extension UInt64 {
    func roundedUp(to alignment: UInt64) -> UInt64 { (self + alignment - 1) / alignment * alignment }
}
