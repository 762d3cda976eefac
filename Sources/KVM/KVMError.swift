import Glibc

/// A failed KVM ioctl or host-memory system call, with the errno it returned.
public struct KVMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call that failed, named as in the kernel documentation (e.g. `KVM_CREATE_VM`).
    public let operation: String
    public let errno: Int32
    /// What the operator can do about it, when we know.
    public let hint: String?

    /// ENOMEM: out of memory or, for mprotect and mmap, out of mappings (vm.max_map_count).
    public var isOutOfMemory: Bool { errno == ENOMEM }

    public init(_ operation: String, errno: Int32, hint: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.hint = hint
    }

    public var description: String {
        var text = "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
        if let hint { text += ". \(hint)" }
        return text
    }

    /// Captures the calling thread's errno for `operation`.
    static func last(_ operation: String, hint: String? = nil) -> KVMError {
        KVMError(operation, errno: Glibc.errno, hint: hint)
    }
}
