import ArgumentParser

/// `memgatectl vm list` names no subcommand of `vm`; ArgumentParser would report the
/// next flag as unknown. This says what is wrong, with the nearest names.
enum SubcommandSuggestion {
    /// The message for the first word that is not a subcommand where one is needed, or nil.
    static func check(_ arguments: [String], root: ParsableCommand.Type) -> String? {
        var command = root
        var path = [root.configuration.commandName ?? "memgatectl"]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty, !word.hasPrefix("-") else { return nil }
            if word == "help" { return nil }
            guard
                let next = subcommands.first(where: { name(of: $0) == word || $0.configuration.aliases.contains(word) })
            else {
                let names = subcommands.map(name(of:))
                let near = names.filter {
                    distance($0, word) <= max(2, word.count / 3) || $0.hasPrefix(word) || word.hasPrefix($0)
                }
                return "unknown subcommand '\(word)' for '\(path.joined(separator: " "))'"
                    + (near.isEmpty ? "" : " (did you mean \(near.map { "'\($0)'" }.joined(separator: " or "))?)")
                    + "; its subcommands: \(names.joined(separator: ", "))"
            }
            command = next
            path.append(word)
        }
        return nil
    }

    static func name(of command: ParsableCommand.Type) -> String {
        command.configuration.commandName ?? command._commandName
    }

    /// Levenshtein distance. Pure.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
