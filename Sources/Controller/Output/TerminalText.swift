/// Text from agents made safe for an operator's terminal. An agent (or a guest
/// that named its VM) must not be able to move the cursor, clear the screen,
/// retitle the window or reorder what is shown. Pure.
public enum TerminalText {
    /// C0 controls (but newline and tab), DEL, C1 controls, line and paragraph
    /// separators and bidirectional overrides become `\uXXXX`. The escape is also
    /// JSON's, so a JSON line stays valid JSON and decodes to the agent's exact text.
    public static func sanitize(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.append(scalar)
                continue
            }
            let hex = String(scalar.value, radix: 16)
            for character in "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex {
                out.append(contentsOf: character.unicodeScalars)
            }
        }
        return String(out)
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x09: false
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
