import Foundation
import Logging
import Platform
import Synchronization
import TestSupport
import Testing

@testable import HTTPServer

/// Answers `/echo` with the request's body and `/block` after `gate` opens.
final class TestHandler: HTTPHandler {
    let gate = DispatchSemaphore(value: 0)
    func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse? {
        request.path == "/fast" ? HTTPResponse(status: 200, contentType: "text/plain", body: Array("fast".utf8)) : nil
    }

    /// The stream of the last `/stream` request, and whether it has closed.
    let opened = Mutex<HTTPStream?>(nil)
    let streamClosed = Atomic<Bool>(false)

    func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        if request.path == "/stream" {
            return .streaming(
                headers: [("Content-Type", "text/plain")],
                body: HTTPStreamBody { [self] stream in
                    stream.onClose { [self] in streamClosed.store(true, ordering: .releasing) }
                    stream.send(Array("first\n".utf8))
                    opened.withLock { $0 = stream }
                })
        }
        if request.path == "/block" { gate.wait() }
        if request.path == "/big" {
            return HTTPResponse(status: 200, contentType: "text/plain", body: [UInt8](repeating: 0x62, count: 16 << 10))
        }
        var transport = "tcp"
        if case .unix(let uid) = context.transport { transport = "unix uid \(uid ?? -1)" }
        return HTTPResponse(
            status: 200, contentType: "text/plain",
            body: Array("\(request.method.rawValue) \(request.target) ".utf8) + request.body,
            headers: [("X-Transport", transport)])
    }
}

let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

func makeServer(_ tweak: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> (HTTPServer, TestHandler) {
    var configuration = HTTPServerConfiguration(tcp: ("127.0.0.1", 0))
    tweak(&configuration)
    let handler = TestHandler()
    return (try HTTPServer(configuration: configuration, handler: handler, logger: quiet), handler)
}

/// The server on real sockets.
@Suite(.serialized)
struct ServerSocketTests {
    func expectHealthy(_ port: UInt16) throws {
        let client = try BlockingHTTPClient(port: port)
        let response = try client.request("GET", "/after")
        #expect(response.status == 200 && response.text == "GET /after ")
    }

    @Test func malformedCorpusOverRealSocketsThenANormalRequest() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        for (name, bytes, status) in ParserTests.malformed {
            let client = try BlockingHTTPClient(port: port)
            try client.send(bytes)
            let response = try client.readResponse()
            #expect(response?.status == status, "\(name)")
            #expect(response?.headers["connection"] == "close", "\(name)")
            let decoded =
                try? JSONSerialization.jsonObject(with: Data(response?.body ?? [])) as? [String: [String: String]]
            #expect(decoded?["error"]?["code"] != nil, "\(name): error body")
            #expect(client.isClosedByPeer(), "\(name): connection closed after the error")
        }
        try expectHealthy(port)
    }

    @Test func aStreamedResponseIsWrittenAsItIsSentAndNoticesThePeerLeaving() throws {
        let (server, handler) = try makeServer()
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        let client = try BlockingHTTPClient(port: port)
        try client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(try client.readResponse(isHead: true))
        #expect(head.status == 200 && head.headers["content-length"] == nil && head.headers["connection"] == "close")
        var seen = try client.readChunk()
        while seen.count < 6 { seen += try client.readChunk() }
        #expect(seen == Array("first\n".utf8))
        let stream = try #require(handler.opened.withLock { $0 })
        // Sent from another thread, written by the loop, in order.
        DispatchQueue.global().async {
            for line in 0..<100 { stream.send(Array("line \(line)\n".utf8)) }
        }
        let expected = (0..<100).map { "line \($0)\n" }.joined()
        var rest: [UInt8] = []
        while rest.count < expected.utf8.count {
            let chunk = try client.readChunk()
            if chunk.isEmpty { break }
            rest += chunk
        }
        #expect(String(decoding: rest, as: UTF8.self) == expected)
        #expect(stream.isOpen && stream.backlog == 0)
        // Input on a stream is ignored; the peer leaving closes the stream, and the handler hears of it.
        try client.send("ignored\r\n")
        #expect(stream.isOpen)
        client.hangUp()
        var closed = false
        for _ in 0..<500 where !closed {
            closed = handler.streamClosed.load(ordering: .acquiring)
            if !closed { usleep(10_000) }
        }
        #expect(closed && !stream.isOpen && !stream.send([1]))
    }

    @Test func finishingAStreamSendsWhatIsQueuedThenCloses() throws {
        let (server, handler) = try makeServer()
        defer { server.stop() }
        let client = try BlockingHTTPClient(port: try #require(server.tcpPort))
        try client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try client.readResponse(isHead: true)
        var stream: HTTPStream?
        for _ in 0..<500 where stream == nil {
            stream = handler.opened.withLock { $0 }
            if stream == nil { usleep(10_000) }
        }
        let open = try #require(stream)
        open.send(Array("last\n".utf8))
        open.finish()
        #expect(!open.send([0x78]), "nothing after finish")
        var all: [UInt8] = []
        while true {
            let chunk = try client.readChunk()
            if chunk.isEmpty { break }
            all += chunk
        }
        #expect(String(decoding: all, as: UTF8.self) == "first\nlast\n")
    }

    @Test func keepAlivePipeliningAndHead() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let client = try BlockingHTTPClient(port: try #require(server.tcpPort))
        try client.send(
            "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        #expect(try client.readResponse()?.text == "GET /1 ")
        #expect(try client.readResponse()?.text == "POST /2 abc")
        #expect(try client.readResponse()?.text == "fast")
        let head = try client.request("HEAD", "/3")
        #expect(head.status == 200 && head.body.isEmpty && head.headers["content-length"] == "8")
        #expect(try client.request("GET", "/4").text == "GET /4 ")
    }

    @Test func slowSenderGets408() throws {
        let (server, _) = try makeServer { $0.limits.headerTimeoutNanos = 300_000_000 }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        let client = try BlockingHTTPClient(port: port)
        try client.send("GET /slow HTTP/1.1\r\nHo")
        // The head never completes, so only the deadline can answer (the client's read waits up to 10 s).
        let response = try client.readResponse()
        #expect(response?.status == 408)
        try expectHealthy(port)
    }

    @Test func abruptCloseMidBodyLeavesTheServerServing() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        do {
            let client = try BlockingHTTPClient(port: port)
            try client.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-ten!!")
        }
        try expectHealthy(port)
        // The close is seen by the event loop, whenever a loaded host gets it scheduled.
        for _ in 0..<3000 where server.connectionCount > 1 { usleep(10_000) }
        #expect(server.connectionCount <= 1)
    }

    @Test func aThousandKeepAliveConnectionsThenTheCap() throws {
        ProcessLimits.raiseFileLimit()
        // All 1000 requests are in flight at once: the worker queue must hold them all (a shorter
        // queue answers 503 busy, as `saturatedWorkersGive503` shows), and they all come from one address.
        let (server, _) = try makeServer {
            $0.limits.maxConnections = 1000
            $0.limits.maxConnectionsPerPeer = 1001
            $0.workerQueueDepth = 1000
        }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        var clients: [BlockingHTTPClient] = []
        for _ in 0..<1000 { clients.append(try BlockingHTTPClient(port: port)) }
        // Every connection sends before any reads: all 1000 are open at once.
        for (index, client) in clients.enumerated() { try client.send("GET /c\(index) HTTP/1.1\r\nHost: x\r\n\r\n") }
        for (index, client) in clients.enumerated() {
            let response = try client.readResponse()
            #expect(
                response?.text == "GET /c\(index) ",
                "connection \(index): \(String(describing: response?.status)) \(response?.text ?? "nil")")
        }
        #expect(server.connectionCount == 1000)
        // Over the cap the server answers 503 at once and closes: the client only reads (a request
        // sent to a socket the server already closed may be reset, and the answer with it).
        #expect(try BlockingHTTPClient(port: port).readResponse()?.status == 503)
        // Nothing else broke: the 1000 still answer on the same connections.
        for (index, client) in clients.enumerated() where index % 50 == 0 {
            #expect(try client.request("GET", "/again\(index)").text == "GET /again\(index) ")
        }
        clients.removeAll()
        for _ in 0..<3000 where server.connectionCount > 0 { usleep(10_000) }
        try expectHealthy(port)
    }

    @Test func saturatedWorkersGive503() throws {
        let (server, handler) = try makeServer {
            $0.workerThreads = 1
            $0.workerQueueDepth = 1
        }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        let blocked = try BlockingHTTPClient(port: port)
        try blocked.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(100_000)
        let queued = try BlockingHTTPClient(port: port)
        try queued.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(100_000)
        let refused = try BlockingHTTPClient(port: port)
        let response = try refused.request("GET", "/third")
        #expect(response.status == 503)
        #expect(response.headers["retry-after"] == "1")
        // The event loop itself never blocked.
        #expect(try refused.request("GET", "/fast").text == "fast")
        handler.gate.signal()
        handler.gate.signal()
        #expect(try blocked.readResponse()?.status == 200)
        #expect(try queued.readResponse()?.status == 200)
    }

    @Test func unixSocketIsOwnerOnlyAndTellsThePeerUID() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-http-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        ).path
        let (server, _) = try makeServer {
            $0.tcp = nil
            $0.unixPath = path
        }
        defer { server.stop() }
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        let client = try BlockingHTTPClient(unixPath: path)
        let response = try client.request("GET", "/u")
        #expect(response.text == "GET /u ")
        #expect(response.headers["x-transport"] == "unix uid \(getuid())")
    }

    @Test func bodyOverTheLimitIsRefusedBeforeItArrives() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let client = try BlockingHTTPClient(port: try #require(server.tcpPort))
        try client.send(
            "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + String(repeating: "x", count: 64 << 10)
        )
        #expect(try client.readResponse()?.status == 413)
    }

    // MARK: Hostile clients

    /// A peer that pipelines requests and never reads: the server stops answering it once
    /// `maxPendingOutputBytes` wait, keeps serving everyone else, and closes it when its
    /// answers stop moving. Memory stays bounded however many requests it sent.
    @Test func aPeerThatDoesNotReadIsNotAnsweredFurtherAndIsClosed() throws {
        let (server, _) = try makeServer {
            $0.limits.maxPendingOutputBytes = 64 << 10
            $0.limits.writeStallTimeoutNanos = 500_000_000
        }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        let pipeliner = try BlockingHTTPClient(port: port)
        // 2000 answers of 16 KiB: 32 MiB if the server answered them all.
        try pipeliner.send(String(repeating: "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", count: 2000))
        try expectHealthy(port)
        var closed = false
        for _ in 0..<3000 where !closed {
            closed = server.connectionCount == 0
            if !closed { usleep(10_000) }
        }
        #expect(closed, "a peer that reads nothing is disconnected after the write-stall timeout")
        // Held at most: the unsent answers under the cap plus one answer, and the buffered requests.
        #expect(server.peakBufferedBytes < 512 << 10, "peak \(server.peakBufferedBytes) bytes")
        #expect(server.bufferedBytes == 0)
    }

    /// A body dripped a byte at a time does not renew its deadline: 408 at the deadline.
    @Test func aDrippedBodyIsCutOffAtItsDeadline() throws {
        let (server, _) = try makeServer { $0.limits.bodyTimeoutNanos = 200_000_000 }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        let client = try BlockingHTTPClient(port: port)
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        // Fewer bytes than the body needs, so only the deadline can end it; stop well inside the
        // 2 s the server keeps reading after its answer, so the answer is never reset away.
        let started = Date()
        for _ in 0..<100 where Date().timeIntervalSince(started) < 0.5 {
            do { try client.send("a") } catch { break }
            usleep(5_000)
        }
        let response = try client.readResponse()
        #expect(response?.status == 408)
        #expect(response?.text.contains("body") == true, "\(response?.text ?? "nil")")
        try expectHealthy(port)
    }

    @Test func oneAddressGetsAtMostItsShareOfConnections() throws {
        let (server, _) = try makeServer { $0.limits.maxConnectionsPerPeer = 3 }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        var held: [BlockingHTTPClient] = []
        for index in 0..<3 {
            let client = try BlockingHTTPClient(port: port)
            #expect(try client.request("GET", "/held\(index)").status == 200)
            held.append(client)
        }
        let refused = try #require(try BlockingHTTPClient(port: port).readResponse())
        #expect(refused.status == 503)
        #expect(refused.text.contains("too_many_connections_from_peer"))
        held.removeLast()
        var freed = false
        for _ in 0..<3000 where !freed {
            freed = server.connectionCount <= 2
            if !freed { usleep(10_000) }
        }
        #expect(try BlockingHTTPClient(port: port).request("GET", "/again").status == 200)
    }

    /// TCP clients can fill every TCP slot; the Unix socket (the operator's way in) still gets in.
    @Test func theUnixSocketHasSlotsTCPCannotTake() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-slots-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        ).path
        let (server, _) = try makeServer {
            $0.unixPath = path
            $0.limits.maxConnections = 2
            $0.limits.maxUnixConnections = 1
        }
        defer { server.stop() }
        let port = try #require(server.tcpPort)
        let tcp = try (0..<2).map { _ in try BlockingHTTPClient(port: port) }
        for client in tcp { #expect(try client.request("GET", "/tcp").status == 200) }
        #expect(try BlockingHTTPClient(port: port).readResponse()?.status == 503)
        let operator_ = try BlockingHTTPClient(unixPath: path)
        #expect(try operator_.request("GET", "/unix").status == 200)
        #expect(try BlockingHTTPClient(unixPath: path).readResponse()?.status == 503)
    }

    /// A socket another server still answers on is never unlinked; a stale one is replaced.
    @Test func aLiveSocketIsNeverTakenOverAndAStaleOneIsReplaced() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-live-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        ).path
        let (first, _) = try makeServer {
            $0.tcp = nil
            $0.unixPath = path
        }
        var refusal: HTTPServerError?
        do {
            _ = try makeServer {
                $0.tcp = nil
                $0.unixPath = path
            }
        } catch let error as HTTPServerError {
            refusal = error
        }
        #expect(refusal?.errno == EADDRINUSE, "\(String(describing: refusal))")
        #expect(try BlockingHTTPClient(unixPath: path).request("GET", "/still").text == "GET /still ")
        first.stop()

        // A socket file nobody listens on (its process died without removing it).
        let bind = Process()
        bind.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        bind.arguments = ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path]
        try bind.run()
        bind.waitUntilExit()
        #expect(bind.terminationStatus == 0)
        let (second, _) = try makeServer {
            $0.tcp = nil
            $0.unixPath = path
        }
        defer { second.stop() }
        #expect(try BlockingHTTPClient(unixPath: path).request("GET", "/new").text == "GET /new ")
    }

    @Test func aSymlinkAtTheSocketPathIsRefusedAndLeftAlone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "memgate-link-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("precious").path
        try Data("keep".utf8).write(to: URL(fileURLWithPath: target))
        let path = directory.appendingPathComponent("agent.sock").path
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        #expect(throws: HTTPServerError.self) {
            try makeServer {
                $0.tcp = nil
                $0.unixPath = path
            }
        }
        #expect(FileManager.default.contents(atPath: target) == Data("keep".utf8))
    }
}
