import Testing

@testable import HTTPServer

/// The connection state machine without sockets: events in, actions out.
struct ConnectionMachineTests {
    static let get = Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8)

    @Test func pipelinedRequestsAreDispatchedOneAtATimeInOrder() {
        var machine = HTTPConnectionMachine(now: 0)
        let two = Array("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let first = machine.received(two, now: 1)
        #expect(first.count == 1)
        guard case .dispatch(let r1)? = first.first else {
            Issue.record("\(first)")
            return
        }
        #expect(r1.target == "/1")
        #expect(machine.isHandling)
        let second = machine.completed(HTTPResponse(status: 200), now: 2)
        #expect(second.count == 2)
        guard case .send(_, let close, _) = second[0], case .dispatch(let r2) = second[1] else {
            Issue.record("\(second)")
            return
        }
        #expect(!close)
        #expect(r2.target == "/2")
    }

    @Test func connectionCloseAndHTTP10CloseAfterTheResponse() {
        var machine = HTTPConnectionMachine(now: 0)
        _ = machine.received(Array("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), now: 1)
        #expect(
            machine.completed(HTTPResponse(status: 200), now: 2) == [
                .send(HTTPResponse(status: 200), close: true, omitBody: false)
            ])
        #expect(machine.isClosed)

        var old = HTTPConnectionMachine(now: 0)
        _ = old.received(Array("GET / HTTP/1.0\r\n\r\n".utf8), now: 1)
        #expect(
            old.completed(HTTPResponse(status: 200), now: 2) == [
                .send(HTTPResponse(status: 200), close: true, omitBody: false)
            ])
    }

    @Test func aStreamedResponseEndsTheConversationAndIgnoresInput() {
        var machine = HTTPConnectionMachine(now: 0)
        let pipelined = Array("GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        _ = machine.received(pipelined, now: 1)
        let streamed = HTTPResponse.streaming(
            headers: [("Content-Type", "text/event-stream")], body: HTTPStreamBody { _ in })
        #expect(machine.completed(streamed, now: 2) == [.stream(streamed)], "the pipelined request is never dispatched")
        #expect(!machine.isHandling && machine.wantsInput && machine.bufferedBytes == 0)
        #expect(machine.received(Self.get, now: 3).isEmpty, "input is only read to notice the peer leaving")
        #expect(machine.tick(now: .max).isEmpty, "no request or idle timeout applies to a stream")
        #expect(machine.peerClosed() == [.close])

        var head = HTTPConnectionMachine(now: 0)
        _ = head.received(Array("HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n".utf8), now: 1)
        #expect(
            head.completed(streamed, now: 2) == [.send(streamed, close: true, omitBody: true)], "HEAD: the head alone")
    }

    @Test func aStreamedHeadHasNoLengthAndClosesTheConnection() {
        let streamed = HTTPResponse.streaming(
            headers: [("Content-Type", "text/event-stream")], body: HTTPStreamBody { _ in })
        let head = String(decoding: HTTPResponseEncoder.head(streamed, close: false, date: nil), as: UTF8.self)
        #expect(head == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    }

    @Test func headOmitsTheBody() {
        var machine = HTTPConnectionMachine(now: 0)
        _ = machine.received(Array("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8), now: 1)
        let response = HTTPResponse(status: 200, body: [1, 2, 3])
        #expect(machine.completed(response, now: 2) == [.send(response, close: false, omitBody: true)])
    }

    @Test func headersMustFinishInTime() {
        var limits = HTTPLimits()
        limits.headerTimeoutNanos = 100
        var machine = HTTPConnectionMachine(limits: limits, now: 0)
        #expect(machine.received(Array("GET / HT".utf8), now: 10).isEmpty)
        #expect(machine.tick(now: 50).isEmpty)
        let actions = machine.tick(now: 111)
        guard case .send(let response, let close, _)? = actions.first else {
            Issue.record("\(actions)")
            return
        }
        #expect(response.status == 408 && close)
    }

    /// The body has one deadline from the end of the headers: bytes trickling in do not renew it.
    @Test func aDrippedBodyMeetsItsDeadline() {
        var limits = HTTPLimits()
        limits.headerTimeoutNanos = 100
        limits.bodyTimeoutNanos = 1_000
        var machine = HTTPConnectionMachine(limits: limits, now: 0)
        #expect(
            machine.received(Array("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".utf8), now: 10).isEmpty
        )
        // One byte every 50 ns: progress, and no deadline reached before 1010.
        for time in stride(from: UInt64(60), to: 1_010, by: 50) {
            #expect(machine.received([0x61], now: time).isEmpty)
            #expect(machine.tick(now: time).isEmpty)
        }
        let actions = machine.tick(now: 1_010)
        guard case .send(let response, let close, _)? = actions.first else {
            Issue.record("\(actions)")
            return
        }
        #expect(response.status == 408 && close)
        #expect(String(decoding: response.body, as: UTF8.self).contains("body"))
    }

    @Test func aBodyInTimeIsDispatched() {
        var limits = HTTPLimits()
        limits.bodyTimeoutNanos = 1_000
        var machine = HTTPConnectionMachine(limits: limits, now: 0)
        #expect(
            machine.received(Array("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na".utf8), now: 10).isEmpty)
        let actions = machine.received([0x62], now: 1_009)
        guard case .dispatch(let request)? = actions.first else {
            Issue.record("\(actions)")
            return
        }
        #expect(request.body == Array("ab".utf8))
        // The next request's clocks start afresh.
        _ = machine.completed(HTTPResponse(status: 200), now: 1_020)
        #expect(machine.tick(now: 1_500).isEmpty)
    }

    @Test func idleConnectionsCloseSilently() {
        var limits = HTTPLimits()
        limits.idleTimeoutNanos = 100
        var machine = HTTPConnectionMachine(limits: limits, now: 0)
        _ = machine.received(Self.get, now: 10)
        _ = machine.completed(HTTPResponse(status: 200), now: 20)
        #expect(machine.tick(now: 119).isEmpty)
        #expect(machine.tick(now: 121) == [.close])
    }

    @Test func noTimeoutWhileAHandlerWorks() {
        var limits = HTTPLimits()
        limits.idleTimeoutNanos = 100
        limits.headerTimeoutNanos = 100
        var machine = HTTPConnectionMachine(limits: limits, now: 0)
        _ = machine.received(Self.get, now: 10)
        #expect(machine.tick(now: 10_000).isEmpty)
        #expect(machine.completed(HTTPResponse(status: 200), now: 10_001).count == 1)
    }

    @Test func aBadRequestIsAnsweredAndCloses() {
        var machine = HTTPConnectionMachine(now: 0)
        let actions = machine.received(Array("GET / HTTP/3.0\r\nHost: x\r\n\r\n".utf8), now: 1)
        guard case .send(let response, let close, _)? = actions.first else {
            Issue.record("\(actions)")
            return
        }
        #expect(response.status == 505 && close)
        #expect(machine.received(Self.get, now: 2).isEmpty)
    }

    @Test func peerCloseWhileHandlingDropsTheLateResponse() {
        var machine = HTTPConnectionMachine(now: 0)
        _ = machine.received(Self.get, now: 1)
        #expect(machine.peerClosed() == [.close])
        #expect(machine.completed(HTTPResponse(status: 200), now: 2).isEmpty)
    }

    @Test func responseEncodingHasLengthAndClose() {
        let head = String(
            decoding: HTTPResponseEncoder.head(HTTPResponse(status: 404, body: [1, 2]), close: true, date: nil),
            as: UTF8.self)
        #expect(head == "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        #expect(HTTPDate.format(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT")
    }
}
