import Foundation

/// Who made a request, and what they may do.
public struct Principal: Sendable, Equatable {
    public enum Role: String, Sendable { case admin, readOnly = "read-only" }
    public var name: String
    public var role: Role
    /// Signed in through the status page's cookie: never allowed to change anything.
    public var viaSession = false

    public init(name: String, role: Role, viaSession: Bool = false) {
        self.name = name
        self.role = role
        self.viaSession = viaSession
    }
}

/// Why a token file was refused.
public struct TokenFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "token file \(path): \(message)" }
}

/// The bearer tokens from `--token-file`: one `NAME ROLE SECRET` a line, ROLE
/// `admin` or `read-only`; a `#` at the start of a line or after a blank starts
/// a comment (a `#` inside a field belongs to it, secrets included). LF or CRLF
/// line ends. Names and secrets are unique. Secrets are compared in constant time.
public struct TokenStore: Sendable {
    struct Entry: Sendable {
        let principal: Principal
        let secret: [UInt8]
    }
    private let entries: [Entry]

    public var isEmpty: Bool { entries.isEmpty }
    public var principals: [Principal] { entries.map(\.principal) }
    public var count: Int { entries.count }

    /// No tokens: every TCP request under /v1 is refused.
    public init() { entries = [] }

    /// Parses the file's text. Pure.
    public init(text: String, path: String = "tokens") throws(TokenFileError) {
        var entries: [Entry] = []
        // Lines by scalar: "\r\n" is one Character to Swift, so splitting Characters on "\n" would miss it.
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        for (number, line) in lines.enumerated() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map {
                String(String.UnicodeScalarView($0))
            }
            let fields = Array(words.prefix { !$0.hasPrefix("#") })
            if fields.isEmpty { continue }
            let at = "line \(number + 1)"
            guard fields.count == 3 else {
                throw TokenFileError(
                    path: path,
                    message:
                        "\(at): expected NAME ROLE SECRET, found \(fields.count) fields (a comment starts with # after a blank)"
                )
            }
            guard let role = Principal.Role(rawValue: fields[1]) else {
                throw TokenFileError(path: path, message: "\(at): role must be admin or read-only, not \(fields[1])")
            }
            guard fields[2].utf8.count >= 16 else {
                throw TokenFileError(path: path, message: "\(at): the secret must be at least 16 characters")
            }
            guard !entries.contains(where: { $0.principal.name == fields[0] }) else {
                throw TokenFileError(
                    path: path, message: "\(at): the name \(fields[0]) appears twice; give each token its own name")
            }
            guard !entries.contains(where: { $0.secret == Array(fields[2].utf8) }) else {
                throw TokenFileError(path: path, message: "\(at): the same secret appears twice")
            }
            entries.append(Entry(principal: Principal(name: fields[0], role: role), secret: Array(fields[2].utf8)))
        }
        self.entries = entries
    }

    /// Reads a token file, refusing one that the group or others can read. A symbolic link
    /// (as Kubernetes mounts secrets) is followed: the mode checked is the file's own.
    public static func load(path: String) throws(TokenFileError) -> TokenStore {
        var info = stat()
        // Safety: stat (which follows links) on a path string into a local stat.
        guard stat(path, &info) == 0 else {
            throw TokenFileError(path: path, message: "cannot read it: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw TokenFileError(path: path, message: "is not a plain file")
        }
        let mode = Int(info.st_mode & 0o777)
        if mode & 0o077 != 0 {
            throw TokenFileError(
                path: path,
                message:
                    "its mode is \(String(mode, radix: 8)); it holds secrets, so chmod 600 it (in Kubernetes, defaultMode: 0400)"
            )
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw TokenFileError(path: path, message: "cannot read it as UTF-8 text")
        }
        return try TokenStore(text: text, path: path)
    }

    /// The principal for an `Authorization` header value, or nil.
    public func authenticate(_ authorization: String?) -> Principal? {
        // Bytes, not Foundation string functions: this runs on every /v1 request.
        guard let header = authorization?.utf8, header.count > 7,
            zip(header.prefix(7), "bearer ".utf8).allSatisfy({ ($0 | 0x20) == $1 })
        else { return nil }
        var presented = Array(header.dropFirst(7))
        while presented.last == 0x20 || presented.last == 0x09 { presented.removeLast() }
        while presented.first == 0x20 || presented.first == 0x09 { presented.removeFirst() }
        var match: Principal?
        // Compare against every entry, in time independent of where (or whether) it matches.
        for entry in entries where Self.constantTimeEquals(entry.secret, presented) {
            match = entry.principal
        }
        return match
    }

    /// Equal bytes, in time that depends only on the lengths.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        let count = max(a.count, b.count)
        for index in 0..<count {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}
