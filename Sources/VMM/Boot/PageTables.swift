/// Builds 4-level x86-64 page tables that identity map guest RAM and its
/// shared alias with 2 MiB pages. Pure: returns the bytes to copy to
/// `BootLayout.pageTablesAddress`.
public struct PageTables: Sendable {
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let largePage: UInt64 = 1 << 7
    static let entriesPerTable = 512

    /// Table pages, page 0 being the PML4.
    private var tables: [[UInt64]] = [Array(repeating: 0, count: entriesPerTable)]
    private let base: UInt64

    public init(base: UInt64) {
        self.base = base
    }

    /// Page tables for `layout`: RAM at its GPA and at GPA | shared mask.
    public static func build(for layout: BootLayout) throws(BootError) -> [UInt8] {
        var tables = PageTables(base: BootLayout.pageTablesAddress)
        tables.map(virtual: 0, physical: 0, size: layout.ramSize)
        tables.map(virtual: layout.sharedMask, physical: layout.sharedMask, size: layout.ramSize)
        let maxPages = Int((BootLayout.imageBase - BootLayout.pageTablesAddress) / BootLayout.pageSize)
        guard tables.pageCount <= maxPages else { throw .pageTablesTooLarge(pages: tables.pageCount, max: maxPages) }
        return tables.bytes
    }

    public var pageCount: Int { tables.count }

    /// Maps [virtual, virtual + size) to physical with 2 MiB pages (all 2 MiB aligned).
    public mutating func map(virtual: UInt64, physical: UInt64, size: UInt64) {
        precondition(
            virtual % BootLayout.largePageSize == 0 && physical % BootLayout.largePageSize == 0
                && size % BootLayout.largePageSize == 0, "2 MiB alignment")
        var offset: UInt64 = 0
        while offset < size {
            let va = virtual + offset
            let pdpt = child(of: 0, index: Int((va >> 39) & 511))
            let pd = child(of: pdpt, index: Int((va >> 30) & 511))
            tables[pd][Int((va >> 21) & 511)] = (physical + offset) | Self.present | Self.writable | Self.largePage
            offset += BootLayout.largePageSize
        }
    }

    /// The table an entry points to, allocating it on first use.
    private mutating func child(of table: Int, index: Int) -> Int {
        let entry = tables[table][index]
        if entry & Self.present != 0 { return Int(((entry & ~0xFFF) - base) / BootLayout.pageSize) }
        tables.append(Array(repeating: 0, count: Self.entriesPerTable))
        let page = tables.count - 1
        tables[table][index] = (base + UInt64(page) * BootLayout.pageSize) | Self.present | Self.writable
        return page
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tables.count * Int(BootLayout.pageSize))
        for table in tables {
            for entry in table { out.append(contentsOf: entry.littleEndianBytes) }
        }
        return out
    }
}

extension FixedWidthInteger {
    var littleEndianBytes: [UInt8] { (0..<Self.bitWidth / 8).map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) } }
}
