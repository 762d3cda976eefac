import CNet
import Foundation
import Glibc
import Logging
import Synchronization

/// Where the server listens and how hard it works.
public struct HTTPServerConfiguration: Sendable {
    /// TCP listener (`127.0.0.1`, port; port 0 picks a free one).
    public var tcp: (host: String, port: UInt16)?
    /// Unix-socket listener, created 0600 (a stale socket file is replaced; a live one is an error).
    public var unixPath: String?
    public var limits = HTTPLimits()
    /// Threads for handlers that may block.
    public var workerThreads = 4
    /// Requests waiting for a worker at most; 503 beyond.
    public var workerQueueDepth = 256
    /// False: the sockets are bound (so a bad address fails at once) but nothing is
    /// accepted until `start()`, leaving the caller a moment to finish setting up.
    public var startsAtOnce = true

    public init(tcp: (host: String, port: UInt16)? = nil, unixPath: String? = nil) {
        self.tcp = tcp
        self.unixPath = unixPath
    }
}

/// Why the server could not start.
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    public var description: String { "\(operation): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// An HTTP/1.1 server on epoll: one event-loop thread for all sockets, a
/// bounded worker pool for handlers that may block. Protocol logic lives in
/// `HTTPConnectionMachine`; this class only moves bytes and runs timers.
public final class HTTPServer: Sendable {
    private let loop: EventLoop
    /// The bound TCP port (useful with port 0).
    public let tcpPort: UInt16?
    public let unixPath: String?

    public init(configuration: HTTPServerConfiguration, handler: HTTPHandler, logger: Logger) throws(HTTPServerError) {
        var listeners: [EventLoop.Listener] = []
        var port: UInt16?
        do throws(HTTPServerError) {
            if let tcp = configuration.tcp {
                // Safety: host is a NUL-terminated Swift string bridged for the call.
                let fd = cnet_listen_tcp(tcp.host, tcp.port, 1024)
                guard fd >= 0 else {
                    throw HTTPServerError(operation: "listen on \(tcp.host):\(tcp.port)", errno: errno)
                }
                listeners.append(.init(fd: fd, isUnix: false))
                port = UInt16(truncatingIfNeeded: cnet_local_port(fd))
            }
            if let path = configuration.unixPath {
                try Self.removeStaleSocket(at: path)
                let fd = cnet_listen_unix(path, 1024, 0o600)
                guard fd >= 0 else { throw HTTPServerError(operation: "listen on unix:\(path)", errno: errno) }
                listeners.append(.init(fd: fd, isUnix: true))
            }
            loop = try EventLoop(listeners: listeners, configuration: configuration, handler: handler, logger: logger)
        } catch {
            for listener in listeners { close(listener.fd) }
            throw error
        }
        tcpPort = port
        unixPath = configuration.unixPath
        if configuration.startsAtOnce { start() }
    }

    private let started = Atomic<Bool>(false)

    /// Starts accepting (once; later calls do nothing).
    public func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        loop.start()
    }

    /// Removes a socket file nobody listens on any more. Anything else at `path` is left
    /// alone and refused: a file that is not a socket (a symlink included: lstat does not
    /// follow it), or a socket another process still answers on (another agent's).
    static func removeStaleSocket(at path: String) throws(HTTPServerError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw HTTPServerError(
                operation:
                    "listen on \(path): a file that is not a socket is in the way; remove it or choose another path",
                errno: EEXIST)
        }
        // Safety: path is a NUL-terminated Swift string bridged for the call; the descriptor is closed at once.
        let probe = cnet_connect_unix(path)
        if probe >= 0 {
            close(probe)
            throw HTTPServerError(
                operation:
                    "listen on \(path): another process is serving on this socket; stop it or choose another path",
                errno: EADDRINUSE)
        }
        guard errno == ECONNREFUSED else {
            throw HTTPServerError(
                operation: "listen on \(path): cannot tell whether the socket there is still in use", errno: errno)
        }
        unlink(path)
    }

    /// Stops accepting, closes every connection and waits for the loop thread.
    public func stop() {
        // A loop that never ran has no thread to wait for.
        start()
        loop.stop()
        if let unixPath { unlink(unixPath) }
    }

    /// Open connections right now.
    public var connectionCount: Int { loop.connectionCount.load(ordering: .relaxed) }

    /// Request and response bytes all connections hold right now, and the most they ever held
    /// (see `HTTPLimits.maxBufferedBytes`).
    public var bufferedBytes: Int { loop.bufferedGauge.load(ordering: .relaxed) }
    public var peakBufferedBytes: Int { loop.peakBufferedGauge.load(ordering: .relaxed) }
}
