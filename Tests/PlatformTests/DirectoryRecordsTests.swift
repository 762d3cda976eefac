import Glibc
import Testing

@testable import Platform

/// getdents64 records are as long as their names: each is read within its own d_reclen.
struct DirectoryRecordsTests {
    /// One linux_dirent64 as the kernel lays it out: 19 bytes of header, the name, a NUL, padding to 8.
    static func record(_ name: String) -> [UInt8] {
        let length = (19 + name.utf8.count + 1 + 7) / 8 * 8
        var bytes = [UInt8](repeating: 0, count: length)
        bytes[16] = UInt8(length & 0xFF)
        bytes[17] = UInt8(length >> 8)
        bytes[18] = 8  // DT_REG
        for (offset, byte) in name.utf8.enumerated() { bytes[19 + offset] = byte }
        return bytes
    }

    @Test func shortRecordsAreReadWithinTheirLength() {
        let bytes = Self.record(".") + Self.record("..") + Self.record("0") + Self.record("17") + Self.record("1023")
        #expect(DirectoryRecords.names(in: bytes) == [".", "..", "0", "17", "1023"])
        // The buffer ends right after the last record: nothing past it is read (a whole struct dirent would be).
        #expect(bytes.count < 5 * 280)
    }

    @Test func aDamagedRecordEndsTheWalk() {
        var broken = Self.record("5")
        broken[16] = 0xFF  // d_reclen past the end of the buffer
        #expect(DirectoryRecords.names(in: Self.record("4") + broken) == ["4"])
        var tiny = Self.record("6")
        tiny[16] = 3  // shorter than the header
        #expect(DirectoryRecords.names(in: tiny) == [])
        #expect(DirectoryRecords.names(in: [UInt8](repeating: 0, count: 10)) == [])
    }

    @Test func thisProcessCountsItsOwnDescriptors() {
        let before = ProcessStats.countEntries("/proc/self/fd")
        let extra = (0..<64).map { _ in open("/dev/null", O_RDONLY) }
        defer { extra.forEach { close($0) } }
        #expect(ProcessStats.countEntries("/proc/self/fd") == before + 64)
    }
}
