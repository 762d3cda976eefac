import CGuestABI
import Testing

@testable import VMM

@Suite struct BootLayoutTests {
    @Test func layoutPlacesStacksAfterTheImageAndAlignsTheBootRegion() throws {
        let layout = try BootLayout(ramSize: 256 << 20, vcpuCount: 2, sharedBit: 40, imageEnd: 0x10_1234)
        #expect(layout.stacksBase == 0x10_2000)
        #expect(layout.stackTop(vcpu: 0) == 0x11_2000)
        #expect(layout.stackTop(vcpu: 1) == 0x12_2000)
        #expect(layout.bootRegionSize == 0x20_0000)
        #expect(layout.dataRAM == 0x20_0000..<(256 << 20))
        #expect(layout.sharedMask == 1 << 40)
        #expect(layout.bootInfoAddress(vcpu: 1) == 0x2400)
    }

    @Test func rejections() {
        #expect(throws: BootError.vcpuCount(0, max: 64)) {
            try BootLayout(ramSize: 256 << 20, vcpuCount: 0, sharedBit: 40, imageEnd: 0)
        }
        #expect(throws: BootError.vcpuCount(65, max: 64)) {
            try BootLayout(ramSize: 256 << 20, vcpuCount: 65, sharedBit: 40, imageEnd: 0)
        }
        #expect(throws: BootError.self) {
            try BootLayout(ramSize: (256 << 20) + 4096, vcpuCount: 1, sharedBit: 40, imageEnd: 0)
        }
        #expect(throws: BootError.self) { try BootLayout(ramSize: 128 << 30, vcpuCount: 1, sharedBit: 40, imageEnd: 0) }
        // The alias needs MAXPHYADDR above the shared bit (36-bit guests cannot use bit 40).
        #expect(throws: BootError.self) {
            try BootLayout(ramSize: 256 << 20, vcpuCount: 1, sharedBit: 40, imageEnd: 0, physicalAddressBits: 36)
        }
        // The alias must lie above RAM.
        #expect(throws: BootError.self) { try BootLayout(ramSize: 256 << 20, vcpuCount: 1, sharedBit: 27, imageEnd: 0) }
        #expect(throws: BootError.imageTooLarge(imageEnd: 0x3F_F000, bootRegionEnd: 0x80_0000, ramSize: 4 << 20)) {
            try BootLayout(ramSize: 4 << 20, vcpuCount: 64, sharedBit: 40, imageEnd: 0x3F_F000)
        }
        #expect(throws: BootError.commandLineTooLong(bytes: 300, max: 255)) {
            try BootInfo.validate(commandLine: String(repeating: "x", count: 300))
        }
    }
}

@Suite struct PageTableTests {
    /// Walks 4-level tables (2 MiB leaves) stored at `base`; nil when not mapped.
    func translate(_ virtual: UInt64, tables: [UInt8], base: UInt64) -> UInt64? {
        func entry(_ table: UInt64, _ index: UInt64) -> UInt64 {
            let at = Int(table - base + index * 8)
            return (0..<8).reduce(UInt64(0)) { $0 | UInt64(tables[at + $1]) << (8 * UInt64($1)) }
        }
        let pml4e = entry(base, (virtual >> 39) & 511)
        guard pml4e & 1 != 0 else { return nil }
        let pdpte = entry(pml4e & ~0xFFF, (virtual >> 30) & 511)
        guard pdpte & 1 != 0, pdpte & 0x80 == 0 else { return nil }
        let pde = entry(pdpte & ~0xFFF, (virtual >> 21) & 511)
        guard pde & 1 != 0, pde & 0x80 != 0, pde & 2 != 0 else { return nil }
        return (pde & ~0x1F_FFFF & ((1 << 52) - 1)) | (virtual & 0x1F_FFFF)
    }

    @Test func identityAndAliasMapsCoverRAMExactly() throws {
        let layout = try BootLayout(ramSize: 3 << 30, vcpuCount: 1, sharedBit: 40, imageEnd: 0x10_1000)
        let bytes = try PageTables.build(for: layout)
        let base = BootLayout.pageTablesAddress
        for address: UInt64 in [0, 0x10_0123, 0x4000_0000, (3 << 30) - 1] {
            #expect(translate(address, tables: bytes, base: base) == address)
            #expect(translate(address | layout.sharedMask, tables: bytes, base: base) == address | layout.sharedMask)
        }
        #expect(translate(3 << 30, tables: bytes, base: base) == nil)
        #expect(translate((1 << 40) | (3 << 30), tables: bytes, base: base) == nil)
        // PML4, two PDPTs, three PDs for each of the two ranges.
        #expect(bytes.count == (1 + 2 + 6) * 4096)
    }

    @Test func largestRAMFitsTheTableArea() throws {
        let layout = try BootLayout(ramSize: BootLayout.maxRAMSize, vcpuCount: 1, sharedBit: 40, imageEnd: 0x10_1000)
        #expect(try PageTables.build(for: layout).count <= Int(BootLayout.imageBase - BootLayout.pageTablesAddress))
    }
}

@Suite struct GDTAndBootInfoTests {
    @Test func gdtHoldsCodeDataAndTSS() {
        let bytes = GDT.bytes(tssBase: 0x1800)
        #expect(bytes.count == 40 && GDT.limit == 39)
        func word(_ i: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i * 8 + $1]) << (8 * UInt64($1)) }
        }
        #expect(word(0) == 0)
        #expect(word(1) & (1 << 53) != 0)  // L bit: 64-bit code
        #expect((word(3) >> 16) & 0xFF_FFFF == 0x1800)  // TSS base low
        #expect((word(3) >> 40) & 0xFF == 0x89)  // present, available 64-bit TSS
    }

    @Test func bootInfoUsesTheHeaderOffsets() throws {
        let layout = try BootLayout(ramSize: 64 << 20, vcpuCount: 2, sharedBit: 40, imageEnd: 0x10_1000)
        let info = BootInfo(layout: layout, vcpu: 1, transport: .port, dataInitiallyShared: true, commandLine: "42 x")
        let bytes = info.encoded()
        func u64(_ key: PartialKeyPath<mg_boot_info>) -> UInt64 {
            let at = MemoryLayout<mg_boot_info>.offset(of: key)!
            return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        #expect(bytes.count == Int(MG_BOOT_INFO_STRIDE))
        #expect(Array(bytes[0..<4]) == [0x4D, 0x47, 0x42, 0x49])  // "MGBI"
        #expect(u64(\mg_boot_info.ram_size) == 64 << 20)
        #expect(u64(\mg_boot_info.shared_mask) == 1 << 40)
        #expect(u64(\mg_boot_info.stack_top) == layout.stackTop(vcpu: 1))
        #expect(u64(\mg_boot_info.data_ram_start) == layout.dataRAM.lowerBound)
        let cmdline = MemoryLayout<mg_boot_info>.offset(of: \mg_boot_info.cmdline)!
        #expect(Array(bytes[cmdline..<cmdline + 5]) == Array("42 x".utf8) + [0])
        let state = MemoryLayout<mg_boot_info>.offset(of: \mg_boot_info.data_initial_state)!
        #expect(bytes[state] == UInt8(MG_STATE_SHARED))
    }
}
