import CLinux

/// The process's heap as the kernel sees it.
public enum ProcessMemory {
    /// Gives free heap pages back to the kernel (glibc keeps them in its arenas otherwise): after
    /// large buffers are freed, e.g. when many event streams end, resident memory falls again.
    public static func returnFreedMemory() {
        _ = clinux_malloc_trim()
    }
}
