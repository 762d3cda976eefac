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

    /// More names than one 32 KiB getdents64 call returns: every one is read, once, and nothing else.
    @Test func aLargeDirectoryIsReadWhole() throws {
        let directory = "/tmp/memgate-dirents-\(getpid())"
        try #require(mkdir(directory, 0o700) == 0)
        let expected = (0..<1500).map { "entry-\($0)-" + String(repeating: "x", count: $0 % 40) }
        defer {
            for name in expected { unlink(directory + "/" + name) }
            rmdir(directory)
        }
        for name in expected {
            let fd = open(directory + "/" + name, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
            try #require(fd >= 0)
            close(fd)
        }
        let names = try #require(ProcessStats.entryNames(directory))
        // Counts and one yes/no, so a failure prints two numbers, not 1500 names.
        #expect(names.count == expected.count)
        #expect(Set(names).count == expected.count && Set(names).isSubset(of: Set(expected)))
        #expect(ProcessStats.entryNames(directory + "/nosuch") == nil)
    }

    /// Other tests in this process open and close descriptors at any time, so the count itself is
    /// not compared: every descriptor this test holds is listed, and the walk's own one is not counted.
    @Test func thisProcessListsItsOwnDescriptors() throws {
        let extra = (0..<64).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { extra.forEach { close($0) } }
        try #require(extra.allSatisfy { $0 >= 0 })
        var walker: Int32 = -1
        let names = try #require(ProcessStats.entryNames("/proc/self/fd") { walker = $0 })
        #expect(Set(extra.map(String.init)).isSubset(of: Set(names)))
        #expect(names.contains(String(walker)))
        #expect(ProcessStats.openDescriptorCount() >= 64)
    }
}
