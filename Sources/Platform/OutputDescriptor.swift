import Glibc

/// Writing to an inherited descriptor such as stdout with plain `write(2)`:
/// errors come back as values (EPIPE, ENOSPC, EIO), never as a trap.
public struct OutputDescriptor: Sendable {
    public let rawValue: Int32

    public static let standardOutput = OutputDescriptor(rawValue: 1)

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// True when the descriptor is a terminal (where raw guest bytes must not go).
    public var isTerminal: Bool { isatty(rawValue) == 1 }

    /// Writes every byte; nil on success, else the errno that stopped it.
    public func writeAll(_ bytes: [UInt8]) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                // Safety: the range [offset, count) lies inside the array's own storage.
                guard let base = buffer.baseAddress else { return 0 }
                return write(rawValue, base + offset, bytes.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if written == 0 { return EIO }
            offset += written
        }
        return nil
    }

    /// Ignores SIGPIPE for the process: a closed reader becomes EPIPE from write, not death.
    public static func ignoreBrokenPipe() {
        signal(SIGPIPE, SIG_IGN)
    }
}
