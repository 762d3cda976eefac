import CLinux
import Glibc

/// This process as Prometheus's `process_*` metrics describe it, read from /proc/self.
public struct ProcessStats: Sendable, Equatable {
    public var cpuSeconds: Double
    public var residentBytes: UInt64
    public var virtualBytes: UInt64
    public var startTimeSeconds: Double
    public var openFileDescriptors: Int
    public var maxFileDescriptors: UInt64

    /// Nil where /proc is not mounted.
    public static func current() -> ProcessStats? {
        guard let stat = read("/proc/self/stat"), let uptime = read("/proc/uptime") else { return nil }
        // The command name (field 2) may hold blanks; the fields after its closing parenthesis do not.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let start = Double(fields[19]),
            let vsize = UInt64(fields[20]), let rss = UInt64(fields[21]),
            let up = uptime.split(separator: " ").first.flatMap({ Double($0) })
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let bootSeconds = Double(MonotonicClock.wallNanos()) / 1e9 - up
        var limit = rlimit()
        // Safety: a local rlimit filled by the call.
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessStats(
            cpuSeconds: (utime + stime) / ticks, residentBytes: rss * page, virtualBytes: vsize,
            startTimeSeconds: bootSeconds + start / ticks, openFileDescriptors: openDescriptorCount(),
            maxFileDescriptors: UInt64(limit.rlim_cur))
    }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Safety: fread writes at most buffer.count bytes into the array's storage.
        let count = fread(&buffer, 1, buffer.count, file)
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    /// This process's open descriptors: the entries of /proc/self/fd but the one this walk holds.
    static func openDescriptorCount() -> Int {
        var own: Int32 = -1
        let names = entryNames("/proc/self/fd") { own = $0 }
        return names?.count { $0 != String(own) } ?? 0
    }

    /// Names in a directory other than `.` and `..`, read with getdents64 into a buffer of our own:
    /// a kernel dirent is only as long as its name (`d_reclen`), never the 280 bytes of `struct dirent`.
    /// `opened` learns the descriptor the walk reads through (it is listed in /proc/self/fd). Nil when
    /// the directory cannot be opened or read.
    static func entryNames(_ path: String, opened: (Int32) -> Void = { _ in }) -> [String]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        opened(fd)
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        var names: [String] = []
        while true {
            // Safety: the kernel writes at most buffer.count bytes into the array's storage.
            let filled = buffer.withUnsafeMutableBytes { clinux_getdents64(fd, $0.baseAddress, $0.count) }
            guard filled >= 0 else { return nil }
            guard filled > 0 else { break }
            names += DirectoryRecords.names(in: buffer.prefix(Int(filled))).filter { $0 != "." && $0 != ".." }
        }
        return names
    }
}

/// Decodes the `linux_dirent64` records getdents64 wrote. Pure: every field is read at its
/// offset inside the record's own `d_reclen`, so a short or damaged record ends the walk.
public enum DirectoryRecords {
    static let reclenOffset = 16
    static let nameOffset = 19

    public static func names(in bytes: some Collection<UInt8>) -> [String] {
        let bytes = Array(bytes)
        var names: [String] = []
        var offset = 0
        while bytes.count - offset > nameOffset {
            let length = Int(bytes[offset + reclenOffset]) | Int(bytes[offset + reclenOffset + 1]) << 8
            guard length > nameOffset, length <= bytes.count - offset else { break }
            let name = bytes[(offset + nameOffset)..<(offset + length)].prefix { $0 != 0 }
            names.append(String(decoding: name, as: UTF8.self))
            offset += length
        }
        return names
    }
}
