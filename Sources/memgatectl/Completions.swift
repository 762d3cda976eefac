import APITypes
import ArgumentParser
import Controller
import Foundation

/// `memgatectl completion bash|zsh|fish`: the script, whose dynamic parts (inventory hosts, contexts, VM names)
/// call memgatectl back as it completes.
struct CompletionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "completion",
        abstract: "Print the completion script for bash, zsh or fish.",
        discussion: """
            bash: source <(memgatectl completion bash); zsh: memgatectl completion zsh > "${fpath[1]}/_memgatectl"; \
            fish: memgatectl completion fish > ~/.config/fish/completions/memgatectl.fish. `make install` installs all three. \
            Besides commands and flags they complete the inventory's host names, the config's contexts, a host's VM names, \
            -o values and vm do actions.
            """)
    @Argument(help: "bash, zsh or fish.", completion: .list(["bash", "zsh", "fish"])) var shell: String

    func validate() throws {
        guard CompletionShell(rawValue: shell) != nil else {
            throw ValidationError("the shell must be bash, zsh or fish, not \(shell)")
        }
    }

    func run() throws {
        guard let kind = CompletionShell(rawValue: shell) else {
            throw CtlFailure.usage("the shell must be bash, zsh or fish")
        }
        Out.text(MemgateCtl.completionScript(for: kind))
    }
}

/// Where completions come from: what the words typed so far and the environment name. Never throws, never waits long.
enum CompletionSources {
    /// The value after `flag` among `words`, if any.
    static func value(of flag: String, in words: [String]) -> String? {
        guard let index = words.lastIndex(of: flag), index + 1 < words.count else { return nil }
        return words[index + 1]
    }

    /// The config's context the words name (`--context`), else its current one.
    static func context(_ words: [String]) -> ContextConfig.Context? {
        guard let data = FileManager.default.contents(atPath: ConfigCommand.path),
            let config = try? ContextConfig(bytes: [UInt8](data), path: ConfigCommand.path)
        else { return nil }
        return try? config.context(value(of: "--context", in: words))
    }

    /// The inventory the words (or MEMGATE_HOSTS, or the context) name.
    static func inventory(_ words: [String]) -> [HostEntry] {
        let environment = ProcessInfo.processInfo.environment["MEMGATE_HOSTS"].flatMap { $0.isEmpty ? nil : $0 }
        if let file = value(of: "--hosts", in: words) ?? environment ?? context(words)?.hosts {
            if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                return (try? Inventory.parse(text, source: file)) ?? []
            }
            return (try? Inventory.parseList(file)) ?? []
        }
        return []
    }

    @Sendable static func hostNames(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        inventory(words).map(\.name).filter { $0.hasPrefix(prefix) }
    }

    @Sendable static func contextNames(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: ConfigCommand.path),
            let config = try? ContextConfig(bytes: [UInt8](data), path: ConfigCommand.path)
        else { return [] }
        return config.contexts.keys.sorted().filter { $0.hasPrefix(prefix) }
    }

    /// The VM names of the host typed just before (asked with a 2 s deadline; nothing when it does not answer).
    @Sendable static func vmNames(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        guard index >= 1, index - 1 < words.count else { return [] }
        let hostWord = words[index - 1]
        guard
            let entry = inventory(words).first(where: { $0.name == hostWord || $0.url == hostWord })
                ?? (try? HostEntry(url: hostWord)),
            let endpoint = Endpoint(entry.url)
        else { return [] }
        var options = TransportOptions()
        options.hostDeadlineMilliseconds = 2_000
        options.connectTimeoutMilliseconds = 1_000
        options.retries = 0
        let environment = ProcessInfo.processInfo.environment["MEMGATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let tokenFile = value(of: "--token-file", in: words) ?? context(words)?.tokenFile
        options.token =
            environment
            ?? tokenFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard let transport = try? CurlTransport(endpoints: [endpoint], options: options) else { return [] }
        let list = FleetClient(hosts: [entry], transport: transport).get(APIRoute.vms.path(), as: VMList.self)[0].value
        return (list?.vms.map(\.name) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
    }
}
