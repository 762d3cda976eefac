/// A guest program ready to copy into RAM: its loadable segments and entry point.
public struct GuestImage: Sendable, Equatable {
    public struct Segment: Sendable, Equatable {
        public var address: UInt64
        /// Bytes from the file; the rest of `memorySize` is zero (bss).
        public var bytes: [UInt8]
        public var memorySize: UInt64
        public var executable: Bool

        public init(address: UInt64, bytes: [UInt8], memorySize: UInt64, executable: Bool) {
            self.address = address
            self.bytes = bytes
            self.memorySize = memorySize
            self.executable = executable
        }
    }

    public var segments: [Segment]
    public var entry: UInt64

    public init(segments: [Segment], entry: UInt64) {
        self.segments = segments
        self.entry = entry
    }

    /// One past the highest byte any segment occupies.
    public var end: UInt64 { segments.map { $0.address + $0.memorySize }.max() ?? 0 }
}

/// Why an ELF file cannot be loaded as a MemGate guest.
public enum ELFLoadError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(size: Int)
    case notELF
    case not64Bit(elfClass: UInt8)
    case notLittleEndian
    case badVersion(UInt32)
    case notStaticExecutable(type: UInt16)
    case wrongMachine(UInt16)
    case programHeadersOutOfFile(offset: UInt64, count: UInt16, entrySize: UInt16)
    case noLoadableSegments
    case segmentDataOutOfFile(index: Int, offset: UInt64, size: UInt64)
    case segmentFileLargerThanMemory(index: Int, fileSize: UInt64, memorySize: UInt64)
    case segmentAddressMismatch(index: Int, virtual: UInt64, physical: UInt64)
    case segmentOutsideRAM(index: Int, start: UInt64, end: UInt64, allowed: Range<UInt64>)
    case segmentsOverlap(first: Int, second: Int)
    case entryNotExecutable(entry: UInt64)

    public var description: String {
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        switch self {
        case .truncated(let size): return "file is \(size) bytes, too short for an ELF64 header (64 bytes)"
        case .notELF: return "not an ELF file (bad magic)"
        case .not64Bit(let c): return "ELF class \(c) is not ELFCLASS64: build the guest for x86-64"
        case .notLittleEndian: return "ELF data encoding is not little endian"
        case .badVersion(let v): return "ELF version \(v) is not EV_CURRENT (1)"
        case .notStaticExecutable(let t):
            return "ELF type \(t) is not ET_EXEC (2): link the guest with -static -no-pie and Guests/memgate.ld"
        case .wrongMachine(let m): return "ELF machine \(m) is not x86-64 (62)"
        case .programHeadersOutOfFile(let o, let n, let s):
            return
                "program header table (offset \(o), \(n) entries of \(s) bytes) does not fit in the file or has the wrong entry size (56)"
        case .noLoadableSegments: return "no PT_LOAD segment with a non-zero size"
        case .segmentDataOutOfFile(let i, let o, let s):
            return "segment \(i): file range offset \(o) size \(s) is past the end of the file"
        case .segmentFileLargerThanMemory(let i, let f, let m):
            return "segment \(i): file size \(f) exceeds memory size \(m)"
        case .segmentAddressMismatch(let i, let v, let p):
            return "segment \(i): virtual address \(hex(v)) differs from physical \(hex(p)); guests are identity mapped"
        case .segmentOutsideRAM(let i, let s, let e, let allowed):
            return
                "segment \(i): [\(hex(s)), \(hex(e))) is outside the loadable range [\(hex(allowed.lowerBound)), \(hex(allowed.upperBound))) (image base .. RAM size)"
        case .segmentsOverlap(let a, let b): return "segments \(a) and \(b) overlap"
        case .entryNotExecutable(let e): return "entry point \(hex(e)) is not inside an executable PT_LOAD segment"
        }
    }
}

/// Parses and validates static x86-64 ELF executables. Pure: bytes in, image out.
public enum ELFLoader {
    static let headerSize = 64
    static let programHeaderSize: UInt16 = 56
    static let ptLoad: UInt32 = 1
    static let flagExecute: UInt32 = 1

    /// - Parameter loadable: where segments may live (from the image base to the end of RAM).
    public static func parse(_ file: [UInt8], loadable: Range<UInt64>) throws(ELFLoadError) -> GuestImage {
        guard file.count >= headerSize else { throw .truncated(size: file.count) }
        guard file[0] == 0x7F, file[1] == 0x45, file[2] == 0x4C, file[3] == 0x46 else { throw .notELF }
        guard file[4] == 2 else { throw .not64Bit(elfClass: file[4]) }
        guard file[5] == 1 else { throw .notLittleEndian }
        let version = read32(file, 20)
        guard file[6] == 1, version == 1 else { throw .badVersion(version == 1 ? UInt32(file[6]) : version) }
        let type = read16(file, 16)
        guard type == 2 else { throw .notStaticExecutable(type: type) }
        let machine = read16(file, 18)
        guard machine == 62 else { throw .wrongMachine(machine) }

        let entry = read64(file, 24)
        let phoff = read64(file, 32)
        let phentsize = read16(file, 54)
        let phnum = read16(file, 56)
        let tableSize = UInt64(phnum) * UInt64(programHeaderSize)
        guard phentsize == programHeaderSize, phoff <= UInt64(file.count), tableSize <= UInt64(file.count) - phoff
        else {
            throw .programHeadersOutOfFile(offset: phoff, count: phnum, entrySize: phentsize)
        }

        var segments: [(index: Int, segment: GuestImage.Segment)] = []
        for index in 0..<Int(phnum) {
            let ph = Int(phoff) + index * Int(programHeaderSize)
            guard read32(file, ph) == ptLoad else { continue }
            let flags = read32(file, ph + 4)
            let offset = read64(file, ph + 8)
            let virtual = read64(file, ph + 16)
            let physical = read64(file, ph + 24)
            let fileSize = read64(file, ph + 32)
            let memorySize = read64(file, ph + 40)
            guard memorySize > 0 else { continue }  // empty segments are legal and load nothing
            guard offset <= UInt64(file.count), fileSize <= UInt64(file.count) - offset else {
                throw .segmentDataOutOfFile(index: index, offset: offset, size: fileSize)
            }
            guard fileSize <= memorySize else {
                throw .segmentFileLargerThanMemory(index: index, fileSize: fileSize, memorySize: memorySize)
            }
            guard virtual == physical else {
                throw .segmentAddressMismatch(index: index, virtual: virtual, physical: physical)
            }
            let (end, overflow) = physical.addingReportingOverflow(memorySize)
            guard !overflow, physical >= loadable.lowerBound, end <= loadable.upperBound else {
                throw .segmentOutsideRAM(index: index, start: physical, end: overflow ? .max : end, allowed: loadable)
            }
            for other in segments {
                let otherEnd = other.segment.address + other.segment.memorySize
                if physical < otherEnd && other.segment.address < end {
                    throw .segmentsOverlap(first: other.index, second: index)
                }
            }
            let bytes = Array(file[Int(offset)..<Int(offset + fileSize)])
            segments.append(
                (
                    index,
                    GuestImage.Segment(
                        address: physical, bytes: bytes, memorySize: memorySize,
                        executable: flags & flagExecute != 0)
                ))
        }
        guard !segments.isEmpty else { throw .noLoadableSegments }
        let entryOK = segments.contains { item in
            item.segment.executable && entry >= item.segment.address
                && entry < item.segment.address + item.segment.memorySize
        }
        guard entryOK else { throw .entryNotExecutable(entry: entry) }
        return GuestImage(segments: segments.map(\.segment), entry: entry)
    }

    static func read16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func read32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(read16(b, at)) | UInt32(read16(b, at + 2)) << 16 }
    static func read64(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(read32(b, at)) | UInt64(read32(b, at + 4)) << 32 }
}
