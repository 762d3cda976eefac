/// A half-open range of guest-physical addresses, page aligned where it matters.
public struct PageRange: Sendable, Hashable, CustomStringConvertible {
    public static let pageSize: UInt64 = 4096

    public var start: UInt64
    public var end: UInt64

    /// An end before the start makes an empty range at the start (never a trap: ranges come from guests).
    public init(start: UInt64, end: UInt64) {
        self.start = start
        self.end = max(start, end)
    }

    /// A size past 2^64 ends the range at 2^64 − 1 (saturating, never a trap).
    public init(start: UInt64, size: UInt64) {
        let (end, overflow) = start.addingReportingOverflow(size)
        self.init(start: start, end: overflow ? .max : end)
    }

    public var size: UInt64 { end - start }
    public var isEmpty: Bool { start == end }
    public var pageCount: UInt64 { size / Self.pageSize }
    public var isPageAligned: Bool { start % Self.pageSize == 0 && end % Self.pageSize == 0 }

    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
    public func contains(_ other: PageRange) -> Bool { other.start >= start && other.end <= end }
    public func overlaps(_ other: PageRange) -> Bool { other.start < end && start < other.end }

    public func clamped(to bounds: PageRange) -> PageRange {
        let s = min(max(start, bounds.start), bounds.end)
        return PageRange(start: s, end: max(s, min(end, bounds.end)))
    }

    /// The page containing `address`.
    public static func page(containing address: UInt64) -> PageRange {
        let start = address & ~(pageSize - 1)
        return PageRange(start: start, size: pageSize)
    }

    public var description: String { "[0x\(String(start, radix: 16)), 0x\(String(end, radix: 16)))" }
}
