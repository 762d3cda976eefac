/// SHA-256 (FIPS 180-4): policy versions and the audit chain, which hashes every
/// event on the writer's thread. Pure Swift, incremental, with no allocation per
/// block: the state is a tuple, the schedule sixteen locals, the rounds unrolled.
public struct SHA256: Sendable {

    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
    /// The block being filled (`filled` bytes of it).
    private var block = [UInt8](repeating: 0, count: 64)
    private var filled = 0
    private var length: UInt64 = 0

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        length &+= UInt64(bytes.count)
        var index = 0
        // Top up a partly filled block first.
        if filled > 0 {
            while filled < 64, index < bytes.count {
                block[filled] = bytes[index]
                filled += 1
                index += 1
            }
            guard filled == 64 else { return }
            compress()
            filled = 0
        }
        // Whole blocks straight from the input.
        while bytes.count - index >= 64 {
            compress(bytes, at: index)
            index += 64
        }
        while index < bytes.count {
            block[filled] = bytes[index]
            filled += 1
            index += 1
        }
    }

    /// The digest of everything given; the hasher is spent.
    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        block[filled] = 0x80
        filled += 1
        if filled > 56 {
            for index in filled..<64 { block[index] = 0 }
            compress()
            filled = 0
        }
        for index in filled..<56 { block[index] = 0 }
        for byte in 0..<8 { block[56 + byte] = UInt8(truncatingIfNeeded: bits >> UInt64(56 - 8 * byte)) }
        compress()
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7] {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        return out
    }

    // The 64 rounds unrolled over a rolling 16-word schedule held in locals (generated; FIPS 180-4 §6.2.2):
    // no array access in the loop, so the compiler keeps the state in registers.
    private mutating func compress() { compress(block, at: 0) }

    /// One 64-byte block of `data` from `offset` (read in place: whole blocks of the input are never copied).
    private mutating func compress(_ data: [UInt8], at offset: Int) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
        @inline(__always) func word(_ i: Int) -> UInt32 {
            let b = offset + i * 4
            return UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
        }
        var w0 = word(0)
        var w1 = word(1)
        var w2 = word(2)
        var w3 = word(3)
        var w4 = word(4)
        var w5 = word(5)
        var w6 = word(6)
        var w7 = word(7)
        var w8 = word(8)
        var w9 = word(9)
        var w10 = word(10)
        var w11 = word(11)
        var w12 = word(12)
        var w13 = word(13)
        var w14 = word(14)
        var w15 = word(15)
        var (a, b, c, d, e, f, g, h) = (state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7)
        @inline(__always) func round(
            _ k: UInt32, _ w: UInt32, _ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
            _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32
        ) {
            let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k &+ w
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            d = d &+ t1
            h = t1 &+ t2
        }
        @inline(__always) func schedule(_ w15: UInt32, _ w2: UInt32, _ w16: UInt32, _ w7: UInt32) -> UInt32 {
            w16 &+ (rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3)) &+ w7 &+ (rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10))
        }
        round(0x428a2f98, w0, a, b, c, &d, e, f, g, &h)
        round(0x71374491, w1, h, a, b, &c, d, e, f, &g)
        round(0xb5c0fbcf, w2, g, h, a, &b, c, d, e, &f)
        round(0xe9b5dba5, w3, f, g, h, &a, b, c, d, &e)
        round(0x3956c25b, w4, e, f, g, &h, a, b, c, &d)
        round(0x59f111f1, w5, d, e, f, &g, h, a, b, &c)
        round(0x923f82a4, w6, c, d, e, &f, g, h, a, &b)
        round(0xab1c5ed5, w7, b, c, d, &e, f, g, h, &a)
        round(0xd807aa98, w8, a, b, c, &d, e, f, g, &h)
        round(0x12835b01, w9, h, a, b, &c, d, e, f, &g)
        round(0x243185be, w10, g, h, a, &b, c, d, e, &f)
        round(0x550c7dc3, w11, f, g, h, &a, b, c, d, &e)
        round(0x72be5d74, w12, e, f, g, &h, a, b, c, &d)
        round(0x80deb1fe, w13, d, e, f, &g, h, a, b, &c)
        round(0x9bdc06a7, w14, c, d, e, &f, g, h, a, &b)
        round(0xc19bf174, w15, b, c, d, &e, f, g, h, &a)
        w0 = schedule(w1, w14, w0, w9)
        round(0xe49b69c1, w0, a, b, c, &d, e, f, g, &h)
        w1 = schedule(w2, w15, w1, w10)
        round(0xefbe4786, w1, h, a, b, &c, d, e, f, &g)
        w2 = schedule(w3, w0, w2, w11)
        round(0x0fc19dc6, w2, g, h, a, &b, c, d, e, &f)
        w3 = schedule(w4, w1, w3, w12)
        round(0x240ca1cc, w3, f, g, h, &a, b, c, d, &e)
        w4 = schedule(w5, w2, w4, w13)
        round(0x2de92c6f, w4, e, f, g, &h, a, b, c, &d)
        w5 = schedule(w6, w3, w5, w14)
        round(0x4a7484aa, w5, d, e, f, &g, h, a, b, &c)
        w6 = schedule(w7, w4, w6, w15)
        round(0x5cb0a9dc, w6, c, d, e, &f, g, h, a, &b)
        w7 = schedule(w8, w5, w7, w0)
        round(0x76f988da, w7, b, c, d, &e, f, g, h, &a)
        w8 = schedule(w9, w6, w8, w1)
        round(0x983e5152, w8, a, b, c, &d, e, f, g, &h)
        w9 = schedule(w10, w7, w9, w2)
        round(0xa831c66d, w9, h, a, b, &c, d, e, f, &g)
        w10 = schedule(w11, w8, w10, w3)
        round(0xb00327c8, w10, g, h, a, &b, c, d, e, &f)
        w11 = schedule(w12, w9, w11, w4)
        round(0xbf597fc7, w11, f, g, h, &a, b, c, d, &e)
        w12 = schedule(w13, w10, w12, w5)
        round(0xc6e00bf3, w12, e, f, g, &h, a, b, c, &d)
        w13 = schedule(w14, w11, w13, w6)
        round(0xd5a79147, w13, d, e, f, &g, h, a, b, &c)
        w14 = schedule(w15, w12, w14, w7)
        round(0x06ca6351, w14, c, d, e, &f, g, h, a, &b)
        w15 = schedule(w0, w13, w15, w8)
        round(0x14292967, w15, b, c, d, &e, f, g, h, &a)
        w0 = schedule(w1, w14, w0, w9)
        round(0x27b70a85, w0, a, b, c, &d, e, f, g, &h)
        w1 = schedule(w2, w15, w1, w10)
        round(0x2e1b2138, w1, h, a, b, &c, d, e, f, &g)
        w2 = schedule(w3, w0, w2, w11)
        round(0x4d2c6dfc, w2, g, h, a, &b, c, d, e, &f)
        w3 = schedule(w4, w1, w3, w12)
        round(0x53380d13, w3, f, g, h, &a, b, c, d, &e)
        w4 = schedule(w5, w2, w4, w13)
        round(0x650a7354, w4, e, f, g, &h, a, b, c, &d)
        w5 = schedule(w6, w3, w5, w14)
        round(0x766a0abb, w5, d, e, f, &g, h, a, b, &c)
        w6 = schedule(w7, w4, w6, w15)
        round(0x81c2c92e, w6, c, d, e, &f, g, h, a, &b)
        w7 = schedule(w8, w5, w7, w0)
        round(0x92722c85, w7, b, c, d, &e, f, g, h, &a)
        w8 = schedule(w9, w6, w8, w1)
        round(0xa2bfe8a1, w8, a, b, c, &d, e, f, g, &h)
        w9 = schedule(w10, w7, w9, w2)
        round(0xa81a664b, w9, h, a, b, &c, d, e, f, &g)
        w10 = schedule(w11, w8, w10, w3)
        round(0xc24b8b70, w10, g, h, a, &b, c, d, e, &f)
        w11 = schedule(w12, w9, w11, w4)
        round(0xc76c51a3, w11, f, g, h, &a, b, c, d, &e)
        w12 = schedule(w13, w10, w12, w5)
        round(0xd192e819, w12, e, f, g, &h, a, b, c, &d)
        w13 = schedule(w14, w11, w13, w6)
        round(0xd6990624, w13, d, e, f, &g, h, a, b, &c)
        w14 = schedule(w15, w12, w14, w7)
        round(0xf40e3585, w14, c, d, e, &f, g, h, a, &b)
        w15 = schedule(w0, w13, w15, w8)
        round(0x106aa070, w15, b, c, d, &e, f, g, h, &a)
        w0 = schedule(w1, w14, w0, w9)
        round(0x19a4c116, w0, a, b, c, &d, e, f, g, &h)
        w1 = schedule(w2, w15, w1, w10)
        round(0x1e376c08, w1, h, a, b, &c, d, e, f, &g)
        w2 = schedule(w3, w0, w2, w11)
        round(0x2748774c, w2, g, h, a, &b, c, d, e, &f)
        w3 = schedule(w4, w1, w3, w12)
        round(0x34b0bcb5, w3, f, g, h, &a, b, c, d, &e)
        w4 = schedule(w5, w2, w4, w13)
        round(0x391c0cb3, w4, e, f, g, &h, a, b, c, &d)
        w5 = schedule(w6, w3, w5, w14)
        round(0x4ed8aa4a, w5, d, e, f, &g, h, a, b, &c)
        w6 = schedule(w7, w4, w6, w15)
        round(0x5b9cca4f, w6, c, d, e, &f, g, h, a, &b)
        w7 = schedule(w8, w5, w7, w0)
        round(0x682e6ff3, w7, b, c, d, &e, f, g, h, &a)
        w8 = schedule(w9, w6, w8, w1)
        round(0x748f82ee, w8, a, b, c, &d, e, f, g, &h)
        w9 = schedule(w10, w7, w9, w2)
        round(0x78a5636f, w9, h, a, b, &c, d, e, f, &g)
        w10 = schedule(w11, w8, w10, w3)
        round(0x84c87814, w10, g, h, a, &b, c, d, e, &f)
        w11 = schedule(w12, w9, w11, w4)
        round(0x8cc70208, w11, f, g, h, &a, b, c, d, &e)
        w12 = schedule(w13, w10, w12, w5)
        round(0x90befffa, w12, e, f, g, &h, a, b, c, &d)
        w13 = schedule(w14, w11, w13, w6)
        round(0xa4506ceb, w13, d, e, f, &g, h, a, b, &c)
        w14 = schedule(w15, w12, w14, w7)
        round(0xbef9a3f7, w14, c, d, e, &f, g, h, a, &b)
        w15 = schedule(w0, w13, w15, w8)
        round(0xc67178f2, w15, b, c, d, &e, f, g, h, &a)
        state = (
            state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e, state.5 &+ f, state.6 &+ g,
            state.7 &+ h
        )
    }

    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(message)
        return hasher.finalize()
    }

    /// The digest of `first` followed by `second`, without joining them.
    public static func digest(_ first: [UInt8], _ second: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(first)
        hasher.update(second)
        return hasher.finalize()
    }

    public static func hex(_ message: [UInt8]) -> String { hexString(digest(message)) }

    /// Lower-case hex of any bytes.
    public static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of lower- or upper-case hex (nil if it is not hex of whole bytes).
    public static func bytes(hex: String) -> [UInt8]? {
        let text = Array(hex.utf8)
        guard text.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        for index in stride(from: 0, to: text.count, by: 2) {
            guard let high = nibble(text[index]), let low = nibble(text[index + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }
}
