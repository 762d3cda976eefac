import TestSupport
import Testing

@testable import HTTPServer

/// The unsent-output buffer against a plain array doing the same appends and partial writes.
struct OutputBufferTests {
    @Test func partialWritesAndAppendsKeepEveryByteInOrder() {
        var generator = SplitMix64(state: 18)
        var buffer = OutputBuffer()
        var reference: [UInt8] = []
        var next: UInt8 = 0
        for _ in 0..<800 {
            if Bool.random(using: &generator) {
                let count = Int.random(in: 0...70_000, using: &generator)
                let bytes = (0..<count).map { _ in
                    next &+= 1
                    return next
                }
                let written = Bool.random(using: &generator) ? Int.random(in: 0...count, using: &generator) : 0
                buffer.append(bytes, from: written)
                reference += bytes.dropFirst(written)
            } else {
                let taken = Int.random(in: 0...max(reference.count, 1), using: &generator)
                buffer.consume(taken)
                reference.removeFirst(min(taken, reference.count))
            }
            #expect(buffer.count == reference.count && buffer.isEmpty == reference.isEmpty)
            let unsent = buffer.withUnsentBytes { Array($0) }
            if unsent != reference {
                Issue.record("unsent bytes differ from the reference after \(reference.count) bytes")
                return
            }
        }
    }

    @Test func consumingEverythingLeavesAnEmptyBuffer() {
        var buffer = OutputBuffer()
        buffer.append([1, 2, 3])
        buffer.consume(2)
        #expect(buffer.withUnsentBytes { Array($0) } == [3])
        buffer.consume(10)
        #expect(buffer.isEmpty && buffer.count == 0)
        buffer.append([4, 5], from: 5)
        #expect(buffer.isEmpty, "an offset past the end keeps nothing")
        buffer.append([6, 7], from: 1)
        #expect(buffer.withUnsentBytes { Array($0) } == [7])
    }
}
