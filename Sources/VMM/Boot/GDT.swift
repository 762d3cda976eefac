import CGuestABI

/// The boot GDT: null, 64-bit code, data, and a 64-bit TSS descriptor.
public enum GDT {
    public static let code64: UInt64 = 0x00AF_9B00_0000_FFFF
    public static let data: UInt64 = 0x00CF_9300_0000_FFFF
    public static let tssLimit: UInt64 = 0x67
    public static let entryCount = 5

    public static var limit: UInt16 { UInt16(entryCount * 8 - 1) }

    /// Descriptor bytes to copy to `BootLayout.gdtAddress`.
    public static func bytes(tssBase: UInt64) -> [UInt8] {
        let tssLow = tssLimit | (tssBase & 0xFF_FFFF) << 16 | 0x89 << 40 | ((tssBase >> 24) & 0xFF) << 56
        let tssHigh = tssBase >> 32
        return [0, code64, data, tssLow, tssHigh].flatMap(\.littleEndianBytes)
    }
}
