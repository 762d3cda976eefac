import CGuestABI
import KVM

/// What a port I/O exit means. Pure: decided from the exit alone.
public enum PortRoute: Sendable, Equatable {
    /// Heartbeat write: acknowledge and resume.
    case heartbeat
    /// COM1 transmit: the bytes go to the console.
    case consoleWrite
    /// COM1 line status read: answer "transmitter empty".
    case consoleStatus
    /// A named sync point (32-bit write).
    case sync(point: UInt32)
    /// The paravirtual KVM_HC_MAP_GPA_RANGE port.
    case mapGPARange
    /// The guest asked to end with this status.
    case exit(status: Int32)
    /// Nobody handles this access.
    case unhandled
}

public enum PortMap {
    public static let console = UInt16(MG_PORT_CONSOLE)
    public static let consoleLineStatus = UInt16(MG_PORT_CONSOLE_LSR)
    public static let heartbeat = UInt16(MG_PORT_HEARTBEAT)
    public static let sync = UInt16(MG_PORT_SYNC)
    public static let hypercall = UInt16(MG_PORT_HYPERCALL)
    public static let exit = UInt16(MG_PORT_EXIT)
    /// LSR bits 5 and 6: transmit holding register and transmitter empty.
    public static let lineStatusIdle: UInt64 = 0x60

    @inline(__always)
    public static func route(_ io: IOExit) -> PortRoute {
        switch (io.port, io.direction) {
        case (heartbeat, .out): .heartbeat
        case (console, .out): .consoleWrite
        case (consoleLineStatus, .in): .consoleStatus
        case (sync, .out) where io.size == 4: .sync(point: UInt32(truncatingIfNeeded: io.value))
        case (hypercall, .out): .mapGPARange
        case (exit, .out) where io.size == 4: .exit(status: Int32(bitPattern: UInt32(truncatingIfNeeded: io.value)))
        default: .unhandled
        }
    }
}
