import Controller
import Testing

/// The controller's `text/event-stream` reader: the format's rules, and a bound on what a
/// broken or hostile agent can make it hold.
@Suite struct SSEParserTests {
    static let stream = Array(
        """
        : a comment, ignored\r
        id: 7\r
        event: conversion\r
        data: {"id":7}\r
        \r
        id: 8\n\
        data: first line\n\
        data: second line\n\
        \n\
        id: 9\n\
        \n\
        data:no space\n\
        \n
        """.utf8)

    @Test func eventsAreTheSameWhateverTheChunkBoundaries() throws {
        var whole = SSEParser()
        let expected = try whole.feed(Self.stream)
        #expect(
            expected == [
                SSEEvent(id: 7, type: "conversion", data: #"{"id":7}"#),
                SSEEvent(id: 8, type: "message", data: "first line\nsecond line"),
                SSEEvent(id: 9, type: "message", data: "no space"),
            ])
        #expect(whole.lastEventID == 9, "an id without data still moves where a reconnection resumes")
        for size in [1, 2, 3, 7, 64] {
            var parser = SSEParser()
            var events: [SSEEvent] = []
            var offset = 0
            while offset < Self.stream.count {
                events += try parser.feed(Self.stream[offset..<min(offset + size, Self.stream.count)])
                offset += size
            }
            #expect(events == expected, "chunks of \(size) bytes")
        }
    }

    @Test func anEventExactlyAtTheLimitPasses() throws {
        let payload = String(repeating: "x", count: 100)
        var parser = SSEParser(maxEventBytes: 100)
        let events = try parser.feed(Array("data: \(payload)\n\n".utf8))
        #expect(events.map(\.data) == [payload])
    }

    @Test func anUnfinishedLinePastTheLimitIsRefused() throws {
        var parser = SSEParser(maxEventBytes: 100)
        _ = try parser.feed(Array("data: ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 90))
        #expect(throws: SSEParserError.eventTooLarge(limit: 100)) {
            try parser.feed(Array(repeating: UInt8(ascii: "x"), count: 20))
        }
    }

    @Test func manyDataLinesWithoutAnEndArePastTheLimitToo() throws {
        var parser = SSEParser(maxEventBytes: 100)
        let line = Array("data: \(String(repeating: "y", count: 30))\n".utf8)
        _ = try parser.feed(line + line + line)
        #expect(throws: SSEParserError.eventTooLarge(limit: 100)) { try parser.feed(line) }
    }

    @Test func eventsBeforeTheOversizedOneAreHandedOverFirst() throws {
        var parser = SSEParser(maxEventBytes: 100)
        let chunk = Array("id: 1\ndata: kept\n\ndata: ".utf8) + Array(repeating: UInt8(ascii: "z"), count: 200)
        let events = try parser.feed(chunk)
        #expect(events == [SSEEvent(id: 1, type: "message", data: "kept")])
        #expect(throws: SSEParserError.eventTooLarge(limit: 100)) { try parser.feed([]) }
        #expect(SSEParserError.eventTooLarge(limit: 100).description.contains("larger than 100 bytes"))
    }

    /// Every data line counts, an empty one included (it adds the line feed the joined data holds).
    @Test func emptyDataLinesCountAgainstTheLimit() throws {
        var parser = SSEParser(maxEventBytes: 1000)
        #expect(try parser.feed(Array(repeating: Array("data:\n".utf8), count: 500).flatMap { $0 }).isEmpty)
        #expect(throws: SSEParserError.eventTooLarge(limit: 1000)) {
            try parser.feed(Array(repeating: Array("data:\n".utf8), count: 600).flatMap { $0 })
        }
        // Under the limit, the event's data is its lines joined by LF, empty ones included.
        var small = SSEParser()
        #expect(
            try small.feed(Array("data:\ndata: a\ndata:\n\n".utf8)) == [
                SSEEvent(id: nil, type: "message", data: "\na\n")
            ])
    }
}
