/// Makes guest console bytes safe for an operator's terminal: everything but
/// printable ASCII, newline and tab becomes `\xNN`, so a guest cannot send
/// escape sequences (cursor moves, title changes, terminal queries). Pure.
public enum ConsoleEscaper {
    public static func escape(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(where: needsEscape) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        let hex = Array("0123456789abcdef".utf8)
        for byte in bytes {
            if needsEscape(byte) {
                out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            } else {
                out.append(byte)
            }
        }
        return out
    }

    static func needsEscape(_ byte: UInt8) -> Bool {
        !(byte == 0x0A || byte == 0x09 || (0x20...0x7E).contains(byte))
    }
}
