import CNet
import Foundation
import Glibc

/// Why a conversation with a VM process (or with the agent) ended.
public struct VMChannelError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let errno: Int32
    public init(_ message: String, errno: Int32 = 0) {
        self.message = message
        self.errno = errno
    }
    public var description: String {
        errno == 0 ? message : "\(message): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// One end of a VM-process socket: whole messages, each a u32 little-endian length
/// and that many bytes of JSON. A message over `VMWire.maxMessageBytes`, a short
/// read or a timeout ends the conversation; the caller closes the channel.
public final class VMChannel: @unchecked Sendable {
    public let fd: Int32
    private let lock = NSLock()
    private var closed = false

    /// Takes ownership of a connected socket; blocking, with `timeoutMillis` on every read and write.
    public init(fd: Int32, timeoutMillis: Int32) {
        self.fd = fd
        // Safety: fcntl on our own descriptor; a failure leaves it as it was (the timeouts still bound every call).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        _ = cnet_set_timeouts(fd, timeoutMillis)
    }

    deinit { close() }

    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        _ = cnet_close(fd)
    }

    /// The peer's uid and pid (SO_PEERCRED): who is really on the other end.
    public var peer: (uid: uid_t, pid: Int32)? {
        let uid = cnet_peer_uid(fd)
        let pid = cnet_peer_pid(fd)
        guard uid >= 0, pid > 0 else { return nil }
        return (uid_t(uid), Int32(truncatingIfNeeded: pid))
    }

    public func send<T: Encodable>(_ message: T) throws(VMChannelError) {
        let body = WireCoding.encode(message)
        guard body.count <= VMWire.maxMessageBytes else {
            throw VMChannelError("message of \(body.count) bytes is over the limit")
        }
        var frame = [UInt8](repeating: 0, count: 4)
        for index in 0..<4 { frame[index] = UInt8(truncatingIfNeeded: UInt32(body.count) >> (8 * index)) }
        frame.append(contentsOf: body)
        try writeAll(frame)
    }

    /// The next message; nil at a clean end of the conversation (the peer closed between messages).
    public func receive<T: Decodable>(_: T.Type) throws(VMChannelError) -> T? {
        guard let header = try readExactly(4, endOK: true) else { return nil }
        let length = header.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard length <= VMWire.maxMessageBytes else {
            throw VMChannelError("message of \(length) bytes is over the limit of \(VMWire.maxMessageBytes)")
        }
        guard let body = try readExactly(length, endOK: false) else {
            throw VMChannelError("the peer closed mid-message")
        }
        guard let message = WireCoding.decode(T.self, from: Data(body)) else {
            throw VMChannelError("a message that is not a valid \(T.self)")
        }
        return message
    }

    private func writeAll(_ bytes: [UInt8]) throws(VMChannelError) {
        var offset = 0
        while offset < bytes.count {
            // Safety: send from our array's storage, within its count.
            let sent = bytes.withUnsafeBytes { buffer in
                Glibc.send(fd, buffer.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                throw VMChannelError("send", errno: errno)
            }
            offset += sent
        }
    }

    private func readExactly(_ count: Int, endOK: Bool) throws(VMChannelError) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            // Safety: recv into our array's storage, within its count.
            let received = out.withUnsafeMutableBytes { buffer in
                Glibc.recv(fd, buffer.baseAddress.map { $0 + offset }, count - offset, 0)
            }
            if received == 0 {
                if offset == 0 && endOK { return nil }
                return nil
            }
            if received < 0 {
                if errno == EINTR { continue }
                throw VMChannelError(
                    errno == EAGAIN || errno == EWOULDBLOCK ? "timed out waiting for the peer" : "recv",
                    errno: errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno)
            }
            offset += received
        }
        return out
    }
}
