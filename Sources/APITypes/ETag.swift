/// The policy version as an HTTP entity tag, the one place it is quoted and unquoted:
/// `ETag: "<version>"` on `GET /v1/policy`, `If-Match: "<version>"` on `PUT`.
public enum ETag {
    /// `"<version>"`.
    public static func quoted(_ version: String) -> String { "\"\(version)\"" }

    /// The version in an `ETag` or `If-Match` value (`"v"`, `W/"v"` or a bare `v`; `*` stays `*`).
    public static func version(_ tag: String) -> String {
        var text = Substring(tag).drop { $0 == " " || $0 == "\t" }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        if text.hasPrefix("W/") { text = text.dropFirst(2) }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { text = text.dropFirst().dropLast() }
        return String(text)
    }
}
