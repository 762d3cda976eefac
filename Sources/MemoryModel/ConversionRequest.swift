/// A validated request to convert a page-aligned range of data RAM.
public struct ConversionRequest: Sendable, Equatable {
    public var range: PageRange
    public var direction: ConversionDirection
    public var trigger: ConversionTrigger
    public var vcpu: UInt32

    /// The conversion a memory fault asks for: the faulting range, to the state the access wanted.
    /// (Explicit requests come only from `MapGPARangeCall.validate`, which checks them first.)
    public static func implicit(range: PageRange, to wanted: PageState, vcpu: UInt32) -> ConversionRequest {
        ConversionRequest(range: range, direction: ConversionDirection(to: wanted), trigger: .implicit, vcpu: vcpu)
    }
}

/// The error codes a guest reads back from KVM_HC_MAP_GPA_RANGE (in RAX).
///
/// MemoryModel stays free of C, so these KVM numbers are copies: `KVMABIPinTests`
/// checks each against `ckvm.h`.
public enum GuestErrorCode: Int64, Sendable, Codable {
    case invalid = -22  // -KVM_EINVAL
    case permission = -1  // -KVM_EPERM
    case notSupported = -1000  // -KVM_ENOSYS
    /// The host cannot carry the conversion out (the VM would exceed its memslot limit).
    case tooBig = -7  // -KVM_E2BIG

    /// The value as the guest's RAX holds it.
    public var raxValue: UInt64 { UInt64(bitPattern: rawValue) }
}

/// Why a conversion request from a guest was refused before policy saw it.
public struct RequestRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: GuestErrorCode
    public var reason: String
    public var description: String { reason }
}

/// The raw KVM_HC_MAP_GPA_RANGE call: RBX = gpa, RCX = npages, RDX = attributes.
/// (Copies of KVM numbers, pinned to `ckvm.h` by `KVMABIPinTests`.)
public struct MapGPARangeCall: Sendable, Equatable {
    public static let pageSizeMask: UInt64 = 0xF  // KVM_MAP_GPA_RANGE_PAGE_SZ_MASK
    public static let encrypted: UInt64 = 1 << 4  // KVM_MAP_GPA_RANGE_ENCRYPTED
    /// Bits 63:5 are reserved.
    public static let reservedMask: UInt64 = ~((1 << 5) - 1)

    public var gpa: UInt64
    public var pageCount: UInt64
    public var attributes: UInt64

    public init(gpa: UInt64, pageCount: UInt64, attributes: UInt64) {
        self.gpa = gpa
        self.pageCount = pageCount
        self.attributes = attributes
    }

    /// Validates the call exactly as KVM does before exiting (alignment, zero
    /// pages, overflow), then as a VMM must (reserved attribute bits, page-size
    /// field), then MemGate's own rule: the range lies in convertible data RAM.
    public func validate(dataRAM: PageRange, ramSize: UInt64, vcpu: UInt32) -> Result<
        ConversionRequest, RequestRejection
    > {
        func reject(_ reason: String) -> Result<ConversionRequest, RequestRejection> {
            .failure(RequestRejection(code: .invalid, reason: reason))
        }
        guard gpa % PageRange.pageSize == 0 else {
            return reject("gpa 0x\(String(gpa, radix: 16)) is not page aligned")
        }
        guard pageCount > 0 else { return reject("npages is 0") }
        let firstFrame = gpa / PageRange.pageSize
        let (lastFrame, overflow) = firstFrame.addingReportingOverflow(pageCount)
        guard !overflow, lastFrame > firstFrame, lastFrame <= UInt64.max / PageRange.pageSize else {
            return reject("gpa 0x\(String(gpa, radix: 16)) + \(pageCount) pages overflows")
        }
        guard attributes & Self.reservedMask == 0 else {
            return reject("reserved attribute bits set (0x\(String(attributes & Self.reservedMask, radix: 16)))")
        }
        guard attributes & Self.pageSizeMask <= 2 else {
            return reject("page-size field \(attributes & Self.pageSizeMask) is not 4K (0), 2M (1) or 1G (2)")
        }
        let range = PageRange(start: gpa, end: lastFrame * PageRange.pageSize)
        guard range.end <= ramSize else { return reject("range \(range) is outside guest RAM (\(ramSize) bytes)") }
        guard dataRAM.contains(range) else {
            return reject("range \(range) touches the boot region, which is not convertible")
        }
        let direction: ConversionDirection = attributes & Self.encrypted != 0 ? .toPrivate : .toShared
        return .success(ConversionRequest(range: range, direction: direction, trigger: .explicit, vcpu: vcpu))
    }
}
