import Glibc

/// An owned file descriptor, closed exactly once when the last reference goes.
public final class FileDescriptor: Sendable {
    public let rawValue: Int32

    public init(owning rawValue: Int32) {
        self.rawValue = rawValue
    }

    deinit {
        close(rawValue)
    }
}
