/// A kubectl label selector (`-l`): requirements joined by commas, all of which must hold.
///
///     tenant=c   tenant==c   tenant!=c   tenant in (a,b)   tenant notin (a,b)   canary   !canary
///
/// `!=` and `notin` also match a VM without the label, as kubectl's do. Pure.
public struct LabelSelector: Sendable, Equatable {
    public enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case oneOf(String, Set<String>)
        case noneOf(String, Set<String>)
        case exists(String)
        case absent(String)
    }

    public let requirements: [Requirement]

    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var selector: String
        public var message: String
        public var description: String { "selector \(selector): \(message)" }
    }

    public init(_ text: String) throws(SyntaxError) {
        func fail(_ message: String) -> SyntaxError { SyntaxError(selector: text, message: message) }
        // Split on commas outside parentheses.
        var parts: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "(": depth += 1
            case ")": depth -= 1
            default: break
            }
            guard depth >= 0 else { throw fail("a ) without its (") }
            if character == ",", depth == 0 {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        guard depth == 0 else { throw fail("a ( without its )") }
        parts.append(current)
        var requirements: [Requirement] = []
        for raw in parts {
            let part = raw.trimmingCharacters(in: .whitespaces)
            guard !part.isEmpty else { throw fail("an empty requirement (two commas, or one at an end)") }
            requirements.append(try Self.requirement(part, fail))
        }
        self.requirements = requirements
    }

    private static func requirement(_ part: String, _ fail: (String) -> SyntaxError) throws(SyntaxError) -> Requirement
    {
        func key(_ text: Substring) throws(SyntaxError) -> String {
            let name = text.trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) else {
                throw fail(
                    "\(name.isEmpty ? "a requirement needs a label key" : "\(name) is not a label key (letters, digits, - _ . /)")"
                )
            }
            return name
        }
        func set(_ text: Substring) throws(SyntaxError) -> Set<String> {
            let inside = text.trimmingCharacters(in: .whitespaces)
            guard inside.hasPrefix("("), inside.hasSuffix(")") else {
                throw fail("in and notin take a list in parentheses: (a,b)")
            }
            let values = inside.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard !values.isEmpty, !values.contains("") else { throw fail("an empty value in a list") }
            return Set(values)
        }
        if part.hasPrefix("!") { return .absent(try key(part.dropFirst())) }
        for (word, negated) in [(" notin ", true), (" in ", false)] {
            if let range = part.range(of: word) {
                let name = try key(part[..<range.lowerBound]), values = try set(part[range.upperBound...])
                return negated ? .noneOf(name, values) : .oneOf(name, values)
            }
        }
        for (operation, negated) in [("!=", true), ("==", false), ("=", false)] {
            if let range = part.range(of: operation) {
                let name = try key(part[..<range.lowerBound])
                let value = part[range.upperBound...].trimmingCharacters(in: .whitespaces)
                guard !value.contains("=") else { throw fail("\(part): one operator per requirement") }
                return negated ? .notEquals(name, value) : .equals(name, value)
            }
        }
        return .exists(try key(Substring(part)))
    }

    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .oneOf(let key, let values): labels[key].map(values.contains) ?? false
            case .noneOf(let key, let values): !(labels[key].map(values.contains) ?? false)
            case .exists(let key): labels[key] != nil
            case .absent(let key): labels[key] == nil
            }
        }
    }
}
