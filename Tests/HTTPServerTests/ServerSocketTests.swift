import Foundation
import Logging
import Synchronization
import Testing
@testable import HTTPServer

/// Answers `/echo` with the request's body and `/block` after `gate` opens.
final class TestHandler: HTTPHandler {
    let gate = DispatchSemaphore(value: 0)
    func respondImmediately(to request: HTTPRequest, context: RequestContext) -> HTTPResponse? {
        request.path == "/fast" ? HTTPResponse(status: 200, contentType: "text/plain", body: Array("fast".utf8)) : nil
    }

    func respond(to request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        if request.path == "/block" { gate.wait() }
        var transport = "tcp"
        if case .unix(let uid) = context.transport { transport = "unix uid \(uid ?? -1)" }
        return HTTPResponse(status: 200, contentType: "text/plain", body: Array("\(request.method.rawValue) \(request.target) ".utf8) + request.body,
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
            let decoded = try? JSONSerialization.jsonObject(with: Data(response?.body ?? [])) as? [String: [String: String]]
            #expect(decoded?["error"]?["code"] != nil, "\(name): error body")
            #expect(client.isClosedByPeer(), "\(name): connection closed after the error")
        }
        try expectHealthy(port)
    }

    @Test func keepAlivePipeliningAndHead() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        let client = try BlockingHTTPClient(port: try #require(server.tcpPort))
        try client.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
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
        let started = Date()
        try client.send("GET /slow HTTP/1.1\r\nHo")
        let response = try client.readResponse()
        #expect(response?.status == 408)
        #expect(Date().timeIntervalSince(started) < 3)
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
        usleep(50_000)
        try expectHealthy(port)
        #expect(server.connectionCount <= 1)
    }

    @Test func aThousandKeepAliveConnectionsThenTheCap() throws {
        HTTPServer.raiseFileLimit()
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
            #expect(response?.text == "GET /c\(index) ", "connection \(index): \(String(describing: response?.status)) \(response?.text ?? "nil")")
        }
        #expect(server.connectionCount == 1000)
        let extra = try BlockingHTTPClient(port: port)
        try extra.send("GET /over HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try extra.readResponse()?.status == 503)
        // Nothing else broke: the 1000 still answer on the same connections.
        for (index, client) in clients.enumerated() where index % 50 == 0 {
            #expect(try client.request("GET", "/again\(index)").text == "GET /again\(index) ")
        }
        clients.removeAll()
        for _ in 0..<100 where server.connectionCount > 0 { usleep(10_000) }
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
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("memgate-http-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock").path
        let (server, _) = try makeServer { $0.tcp = nil; $0.unixPath = path }
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
        try client.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + String(repeating: "x", count: 64 << 10))
        #expect(try client.readResponse()?.status == 413)
    }
}
