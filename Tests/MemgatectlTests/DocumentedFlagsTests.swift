import Foundation
import TestSupport
import Testing

/// Every flag the README shows on a `memgatectl` or `memgate-agent` command line is one
/// that command's `--help` lists: documentation and binaries cannot drift apart.
@Suite struct DocumentedFlagsTests {
    struct Use: Hashable {
        var binary: String
        var words: [String]
        var flags: [String]
    }

    /// Command lines in the README: code blocks and inline code that start a command.
    static func uses() throws -> [Use] {
        let readme = try String(
            contentsOf: TestSupport.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        var candidates: [String] = []
        var inBlock = false
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                inBlock.toggle()
                continue
            }
            if inBlock {
                candidates.append(String(line))
                continue
            }
            let spans = line.split(separator: "`", omittingEmptySubsequences: false)
            for (index, span) in spans.enumerated() where index % 2 == 1 { candidates.append(String(span)) }
        }
        var uses: Set<Use> = []
        for candidate in candidates {
            let tokens = candidate.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard
                let start = tokens.firstIndex(where: {
                    $0 == "memgatectl" || $0 == "memgate-agent" || $0.hasSuffix("/memgatectl")
                        || $0.hasSuffix("/memgate-agent")
                })
            else { continue }
            let binary = tokens[start].hasSuffix("memgatectl") ? "memgatectl" : "memgate-agent"
            let rest = tokens[(start + 1)...]
            // `migrate|check` in a synopsis: either subcommand; the first is checked.
            let words = Array(
                rest.map { String($0.prefix { $0 != "|" }) }.prefix {
                    $0.range(of: "^[a-z][a-z-]*$", options: .regularExpression) != nil
                })
            // `[--db FILE | --no-record]` style synopses: the brackets are not part of the flag.
            let flags = rest.map { String($0.drop { $0 == "[" || $0 == "(" || $0 == "|" }) }.filter {
                $0.hasPrefix("--")
            }.compactMap { token -> String? in
                let flag = String(token.prefix { $0 == "-" || $0.isLetter || $0.isNumber })
                // ArgumentParser's own flags are in no command's option list.
                return flag.count > 2 && !["--help", "--version", "--generate-completion-script"].contains(flag)
                    ? flag : nil
            }
            uses.insert(Use(binary: binary, words: words, flags: flags))
        }
        return Array(uses)
    }

    @Test func everyDocumentedFlagIsInItsCommandsHelp() throws {
        let uses = try Self.uses()
        #expect(uses.count >= 20, "the README shows commands (found \(uses.count))")
        var helps: [[String]: String] = [:]
        func help(_ binary: String, _ words: [String]) throws -> String? {
            let key = [binary] + words
            if let known = helps[key] { return known }
            let result = try TestSupport.run(try TestSupport.binaryPath(binary), words + ["--help"])
            // A word that is not a subcommand (an argument) fails or shows the parent's help.
            guard result.status == 0, result.stdout.contains("USAGE: \(([binary] + words).joined(separator: " "))")
            else { return nil }
            helps[key] = result.stdout
            return result.stdout
        }
        var checked = 0
        for use in uses where !use.flags.isEmpty {
            // The longest run of words that names a command.
            var words = use.words
            var text: String?
            while text == nil {
                text = try help(use.binary, words)
                if text == nil {
                    guard !words.isEmpty else { break }
                    words.removeLast()
                }
            }
            guard let text else {
                Issue.record("no help for \(use.binary) \(use.words.joined(separator: " "))")
                continue
            }
            for flag in use.flags {
                #expect(
                    text.contains(flag + " ") || text.contains(flag + "\n") || text.contains(flag + ","),
                    "the README shows \(flag) on `\(use.binary) \(words.joined(separator: " "))`, whose --help does not list it"
                )
                checked += 1
            }
        }
        #expect(checked >= 30, "flags checked: \(checked)")
    }
}

/// `make install` installs what these generate: shell completions that know the commands
/// and flags, from ArgumentParser itself.
@Suite struct CompletionTests {
    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScriptsKnowTheCommands(shell: String) throws {
        let ctlScript = try TestSupport.run(
            try TestSupport.binaryPath("memgatectl"), ["--generate-completion-script", shell])
        #expect(ctlScript.status == 0)
        for word in ["policy", "audit", "console", "deadline", "output"] {
            #expect(ctlScript.stdout.contains(word), "the \(shell) completion of memgatectl lacks \(word)")
        }
        let agentScript = try TestSupport.run(
            try TestSupport.binaryPath("memgate-agent"), ["--generate-completion-script", shell])
        #expect(
            agentScript.status == 0 && agentScript.stdout.contains("serve")
                && agentScript.stdout.contains("session-ttl"))
    }
}
