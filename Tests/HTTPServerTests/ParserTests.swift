import Testing

@testable import HTTPServer

/// The request parser on raw bytes: every case also split at every byte boundary.
struct ParserTests {
    static func parseAll(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> [HTTPRequestParser.Result] {
        var parser = HTTPRequestParser(limits: limits)
        var buffer = bytes
        var results: [HTTPRequestParser.Result] = []
        while !buffer.isEmpty {
            let result = parser.parse(buffer)
            results.append(result)
            switch result {
            case .request(_, let consumed): buffer.removeFirst(consumed)
            default: return results
            }
        }
        return results
    }

    /// Feeds `bytes` in two pieces split at `split`, as a connection would receive them.
    static func parseSplit(_ bytes: [UInt8], at split: Int) -> HTTPRequestParser.Result {
        var parser = HTTPRequestParser()
        var buffer = Array(bytes[..<split])
        let first = parser.parse(buffer)
        if case .needMore = first {} else { return first }
        buffer += bytes[split...]
        return parser.parse(buffer)
    }

    @Test func simpleGet() {
        let results = Self.parseAll(Array("GET /healthz HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n".utf8))
        guard case .request(let request, let consumed)? = results.first else {
            Issue.record("no request: \(results)")
            return
        }
        #expect(request.method == .GET)
        #expect(request.target == "/healthz")
        #expect(request.header("host") == "a")
        #expect(request.header("USER-AGENT") == "t")
        #expect(consumed == 49)
        #expect(request.keepAlive)
    }

    @Test func bodyAndPipelining() {
        let bytes = Array(
            "POST /v1/vms HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b?x=1 HTTP/1.0\r\n\r\n".utf8)
        let results = Self.parseAll(bytes)
        #expect(results.count == 2)
        guard case .request(let post, _) = results[0], case .request(let get, _) = results[1] else {
            Issue.record("\(results)")
            return
        }
        #expect(post.body == Array("hello".utf8))
        #expect(get.path == "/b")
        #expect(get.query == "x=1")
        #expect(get.minorVersion == 0)
        #expect(!get.keepAlive)
    }

    static let wellFormed: [String] = [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /v1/policy/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "\r\nGET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "PUT /v1/policy HTTP/1.1\r\nHost: x\r\nIf-Match: \"abc\"\r\nContent-Length: 3\r\n\r\nxyz",
        "DELETE /v1/vms/3 HTTP/1.0\r\n\r\n",
    ]

    @Test(arguments: wellFormed)
    func everySplitGivesTheSameRequest(_ text: String) {
        let bytes = Array(text.utf8)
        guard case .request(let whole, let consumed)? = Self.parseAll(bytes).first else {
            Issue.record("whole request did not parse")
            return
        }
        #expect(consumed == bytes.count)
        for split in 1..<bytes.count {
            let result = Self.parseSplit(bytes, at: split)
            #expect(result == .request(whole, consumed: consumed), "split at \(split)")
        }
    }

    /// Malformed requests: the status each must get (the connection closes after).
    static let malformed: [(String, [UInt8], Int)] = {
        func b(_ s: String) -> [UInt8] { Array(s.utf8) }
        let long = String(repeating: "a", count: 9000)
        var cases: [(String, [UInt8], Int)] = [
            ("missing version", b("GET /\r\nHost: x\r\n\r\n"), 400),
            ("extra spaces", b("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
            ("lowercase version", b("GET / http/1.1\r\nHost: x\r\n\r\n"), 400),
            ("HTTP/2.0", b("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505),
            ("HTTP/0.9 style", b("GET / HTTP/0.9\r\nHost: x\r\n\r\n"), 505),
            ("garbage version", b("GET / HTTP/x.y\r\nHost: x\r\n\r\n"), 400),
            ("unknown method", b("BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), 501),
            ("method with bad byte", b("G@T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
            ("absolute target", b("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
            ("NUL in target", b("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
            ("NUL in header", b("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"), 400),
            (
                "bad UTF-8 in header",
                [UInt8]("GET / HTTP/1.1\r\nHost: x\r\nX-A: ".utf8) + [0xC3, 0x28] + b("\r\n\r\n"), 400
            ),
            ("bare LF", b("GET / HTTP/1.1\nHost: x\n\n"), 400),
            ("obs-fold", b("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n"), 400),
            ("space before colon", b("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400),
            ("header without colon", b("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400),
            ("empty header name", b("GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n"), 400),
            ("missing Host", b("GET / HTTP/1.1\r\n\r\n"), 400),
            ("two Hosts", b("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400),
            (
                "duplicate Content-Length",
                b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab"), 400
            ),
            (
                "conflicting Content-Length",
                b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400
            ),
            ("negative Content-Length", b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400),
            ("non-numeric Content-Length", b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"), 400),
            (
                "huge Content-Length",
                b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400
            ),
            (
                "TE with CL",
                b("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"), 400
            ),
            (
                "chunked body",
                b("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 411
            ),
            ("gzip TE", b("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 501),
            ("body too large", b("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"), 413),
            ("request line too long", b("GET /\(long) HTTP/1.1\r\nHost: x\r\n\r\n"), 414),
            ("request line too long, unfinished", b("GET /\(long)"), 414),
            (
                "header block too large",
                b(
                    "GET / HTTP/1.1\r\nHost: x\r\n"
                        + String(repeating: "X-Pad: \(String(repeating: "p", count: 1000))\r\n", count: 20)), 431
            ),
            (
                "too many fields",
                b("GET / HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X-A: 1\r\n", count: 101) + "\r\n"), 431
            ),
        ]
        cases.append(("control byte DEL in header", b("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{7F}\r\n\r\n"), 400))
        return cases
    }()

    @Test func malformedRequestsGetTheirStatus() {
        #expect(Self.malformed.count >= 30)
        for (name, bytes, status) in Self.malformed {
            let results = Self.parseAll(bytes)
            guard case .failure(let error)? = results.last else {
                Issue.record("\(name): expected \(status), got \(results)")
                continue
            }
            #expect(error.status == status, "\(name): \(error)")
        }
    }

    @Test func malformedRequestsFailTheSameWhenSplit() {
        for (name, bytes, status) in Self.malformed where bytes.count < 600 {
            for split in 1..<bytes.count {
                let result = Self.parseSplit(bytes, at: split)
                guard case .failure(let error) = result else {
                    Issue.record("\(name) split at \(split): \(result)")
                    break
                }
                #expect(error.status == status, "\(name) split at \(split)")
            }
        }
    }

    @Test func partialHeadWaits() {
        var parser = HTTPRequestParser()
        #expect(parser.parse(Array("GET / HTTP/1.1\r\nHo".utf8)) == .needMore)
    }
}
