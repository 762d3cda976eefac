import CNet
import Foundation
import Glibc

/// The agent's connection to one VM process. Requests go one at a time; a broken
/// connection is made again on the next request (a VM process outlives connections).
/// Each connection checks who answers: a socket of this user in the run directory,
/// reached without a link, whose peer (SO_PEERCRED) is this user and the expected
/// pid, speaking this protocol version about this VM.
public final class VMProcessClient: @unchecked Sendable {
    public let vmID: Int64
    public let pid: Int32
    private let socketPath: String
    private let timeoutMillis: Int32
    private let lock = NSLock()
    private var channel: VMChannel?

    public init(runDirectory: RunDirectory, vmID: Int64, pid: Int32, timeoutMillis: Int32 = 10_000) {
        self.vmID = vmID
        self.pid = pid
        socketPath = runDirectory.socketPath(vmID)
        self.timeoutMillis = timeoutMillis
    }

    /// Sends one request and returns the reply.
    public func call(_ request: VMRequest) throws(VMChannelError) -> VMReply {
        lock.lock()
        defer { lock.unlock() }
        // One retry on a fresh connection: the VM process may have dropped an idle one.
        for attempt in 0..<2 {
            do throws(VMChannelError) {
                let channel = try connected()
                try channel.send(request)
                guard let reply = try channel.receive(VMReply.self) else {
                    throw VMChannelError("the VM process closed the connection")
                }
                return reply
            } catch {
                channel?.close()
                channel = nil
                if attempt == 1 { throw error }
            }
        }
        throw VMChannelError("unreachable")
    }

    /// The hello reply: the VM process's status as it greets (adoption reads it).
    public func hello() throws(VMChannelError) -> VMReply {
        lock.lock()
        defer { lock.unlock() }
        channel?.close()
        channel = nil
        return try connect().1
    }

    /// One request to a VM process whose pid is not known (`memgate-agent vm`): the socket must be
    /// this user's, reached without a link, and its peer this user.
    public static func ask(_ directory: RunDirectory, vmID: Int64, _ request: VMRequest) throws(VMChannelError)
        -> VMReply
    {
        let path = directory.socketPath(vmID)
        if let problem = RunDirectory.socketProblem(path) { throw VMChannelError("\(path) \(problem)") }
        let fd = cnet_connect_unix(path)
        guard fd >= 0 else { throw VMChannelError("connect \(path)", errno: errno) }
        let channel = VMChannel(fd: fd, timeoutMillis: 10_000)
        defer { channel.close() }
        guard let peer = channel.peer, peer.uid == geteuid() else {
            throw VMChannelError("\(path) is answered by another user")
        }
        try channel.send(VMRequest(.hello, protocolVersion: VMWire.protocolVersion))
        guard let hello = try channel.receive(VMReply.self), hello.ok, hello.vmID == vmID else {
            throw VMChannelError("the VM process refused the handshake")
        }
        if request.op == .hello { return hello }
        try channel.send(request)
        guard let reply = try channel.receive(VMReply.self) else {
            throw VMChannelError("the VM process closed the connection")
        }
        return reply
    }

    public func close() {
        lock.lock()
        channel?.close()
        channel = nil
        lock.unlock()
    }

    private func connected() throws(VMChannelError) -> VMChannel {
        if let channel { return channel }
        return try connect().0
    }

    private func connect() throws(VMChannelError) -> (VMChannel, VMReply) {
        if let problem = RunDirectory.socketProblem(socketPath) { throw VMChannelError("\(socketPath) \(problem)") }
        let fd = cnet_connect_unix(socketPath)
        guard fd >= 0 else { throw VMChannelError("connect \(socketPath)", errno: errno) }
        let channel = VMChannel(fd: fd, timeoutMillis: timeoutMillis)
        guard let peer = channel.peer, peer.uid == geteuid(), peer.pid == pid else {
            channel.close()
            throw VMChannelError(
                "\(socketPath) is answered by \(channel.peer.map { "uid \($0.uid) pid \($0.pid)" } ?? "an unknown peer"), not by VM \(vmID)'s process (pid \(pid))"
            )
        }
        try channel.send(VMRequest(.hello, protocolVersion: VMWire.protocolVersion))
        guard let reply = try channel.receive(VMReply.self) else {
            channel.close()
            throw VMChannelError("the VM process closed the connection during the handshake")
        }
        guard reply.ok, reply.protocolVersion == VMWire.protocolVersion, reply.vmID == vmID else {
            channel.close()
            throw VMChannelError(
                reply.error
                    ?? "the handshake named VM \(reply.vmID.map(String.init) ?? "?"), protocol \(reply.protocolVersion.map(String.init) ?? "?")"
            )
        }
        self.channel = channel
        return (channel, reply)
    }
}
