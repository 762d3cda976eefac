import TestSupport
import Testing

@testable import VMM

/// Builds minimal ELF64 files for the loader's rejection tests.
struct ELFBuilder {
    struct ProgramHeader {
        var type: UInt32 = 1
        var flags: UInt32 = 5
        var offset: UInt64 = 0x1000
        var virtual: UInt64 = 0x10_0000
        var physical: UInt64 = 0x10_0000
        var fileSize: UInt64 = 16
        var memorySize: UInt64 = 16
    }

    var ident: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    var type: UInt16 = 2
    var machine: UInt16 = 62
    var version: UInt32 = 1
    var entry: UInt64 = 0x10_0000
    var programHeaderOffset: UInt64 = 64
    var programHeaderEntrySize: UInt16 = 56
    var headers: [ProgramHeader] = [ProgramHeader()]
    var fileSize = 0x1100

    func bytes() -> [UInt8] {
        var out = [UInt8](repeating: 0x90, count: fileSize)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) {
            for i in 0..<(T.bitWidth / 8) where at + i < out.count {
                out[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i))
            }
        }
        for (i, b) in ident.enumerated() { out[i] = b }
        put(type, 16)
        put(machine, 18)
        put(version, 20)
        put(entry, 24)
        put(programHeaderOffset, 32)
        put(UInt16(64), 52)
        put(programHeaderEntrySize, 54)
        put(UInt16(headers.count), 56)
        for (i, h) in headers.enumerated() {
            let at = Int(programHeaderOffset) + i * 56
            put(h.type, at)
            put(h.flags, at + 4)
            put(h.offset, at + 8)
            put(h.virtual, at + 16)
            put(h.physical, at + 24)
            put(h.fileSize, at + 32)
            put(h.memorySize, at + 40)
        }
        return out
    }
}

@Suite struct ELFLoaderTests {
    let loadable: Range<UInt64> = 0x10_0000..<0x1000_0000

    func parse(_ builder: ELFBuilder) throws(ELFLoadError) -> GuestImage {
        try ELFLoader.parse(builder.bytes(), loadable: loadable)
    }

    @Test func acceptsAMinimalExecutable() throws {
        var builder = ELFBuilder()
        builder.headers.append(
            .init(
                type: 1, flags: 6, offset: 0, virtual: 0x10_1000, physical: 0x10_1000, fileSize: 0, memorySize: 0x2000))
        // PT_NOTE: ignored
        builder.headers.append(.init(type: 4, flags: 4, offset: 0, virtual: 0, physical: 0, fileSize: 0, memorySize: 0))
        let image = try parse(builder)
        #expect(image.entry == 0x10_0000)
        #expect(image.segments.count == 2)
        #expect(image.segments[0].bytes.count == 16 && image.segments[0].executable)
        #expect(image.end == 0x10_3000)
    }

    @Test func acceptsTheBuiltHelloGuest() throws {
        let image = try ELFLoader.parse(try TestSupport.guestBytes("hello"), loadable: loadable)
        #expect(image.entry == 0x10_0000)
        #expect(image.segments.contains { $0.executable })
    }

    @Test func rejections() {
        func expectError(_ expected: ELFLoadError, _ mutate: (inout ELFBuilder) -> Void) {
            var builder = ELFBuilder()
            mutate(&builder)
            #expect(throws: expected) { try parse(builder) }
        }
        #expect(throws: ELFLoadError.truncated(size: 10)) {
            try ELFLoader.parse([UInt8](repeating: 0, count: 10), loadable: loadable)
        }
        expectError(.notELF) { $0.ident[1] = 0x46 }
        expectError(.not64Bit(elfClass: 1)) { $0.ident[4] = 1 }
        expectError(.notLittleEndian) { $0.ident[5] = 2 }
        expectError(.badVersion(7)) { $0.version = 7 }
        expectError(.notStaticExecutable(type: 3)) { $0.type = 3 }
        expectError(.wrongMachine(183)) { $0.machine = 183 }
        expectError(.programHeadersOutOfFile(offset: 0x10F0, count: 1, entrySize: 56)) {
            $0.programHeaderOffset = 0x10F0
        }
        expectError(.programHeadersOutOfFile(offset: 64, count: 1, entrySize: 32)) { $0.programHeaderEntrySize = 32 }
        expectError(.noLoadableSegments) { $0.headers[0].type = 4 }
        expectError(.noLoadableSegments) {
            $0.headers[0].memorySize = 0
            $0.headers[0].fileSize = 0
        }
        expectError(.segmentDataOutOfFile(index: 0, offset: 0x1000, size: 0x200)) {
            $0.headers[0].fileSize = 0x200
            $0.headers[0].memorySize = 0x200
        }
        expectError(.segmentFileLargerThanMemory(index: 0, fileSize: 16, memorySize: 8)) {
            $0.headers[0].memorySize = 8
        }
        expectError(.segmentAddressMismatch(index: 0, virtual: 0xFFFF_FFFF_8010_0000, physical: 0x10_0000)) {
            $0.headers[0].virtual = 0xFFFF_FFFF_8010_0000
        }
        expectError(.segmentOutsideRAM(index: 0, start: 0x8000, end: 0x8010, allowed: loadable)) {
            $0.headers[0].virtual = 0x8000
            $0.headers[0].physical = 0x8000
            $0.entry = 0x8000
        }
        expectError(.segmentOutsideRAM(index: 0, start: 0xFFF_FFF8, end: 0x1000_0008, allowed: loadable)) {
            $0.headers[0].virtual = 0xFFF_FFF8
            $0.headers[0].physical = 0xFFF_FFF8
        }
        expectError(.segmentOutsideRAM(index: 0, start: .max - 4, end: .max, allowed: loadable)) {
            $0.headers[0].virtual = .max - 4
            $0.headers[0].physical = .max - 4
        }
        expectError(.segmentsOverlap(first: 0, second: 1)) {
            $0.headers.append(
                .init(flags: 6, offset: 0, virtual: 0x10_0008, physical: 0x10_0008, fileSize: 0, memorySize: 64))
        }
        expectError(.entryNotExecutable(entry: 0x20_0000)) { $0.entry = 0x20_0000 }
        expectError(.entryNotExecutable(entry: 0x10_0000)) { $0.headers[0].flags = 6 }
    }

    @Test func errorsNameTheProblem() {
        #expect(ELFLoadError.notStaticExecutable(type: 3).description.contains("-static -no-pie"))
        #expect(ELFLoadError.segmentsOverlap(first: 0, second: 1).description.contains("overlap"))
        #expect(ELFLoadError.entryNotExecutable(entry: 0x1000).description.contains("0x1000"))
    }
}
