import ArgumentParser
import Controller
import Foundation

/// `memgatectl config`: the contexts of the config file, as kubectl's `config` keeps kubeconfig's.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract:
            "Show and change the contexts of the config file ($MEMGATE_CONFIG, else ~/.config/memgate/config.json).",
        subcommands: [GetContexts.self, CurrentContext.self, UseContext.self, SetContext.self])

    /// The config file's path: `$MEMGATE_CONFIG`, else `~/.config/memgate/config.json`.
    static var path: String {
        let environment = ProcessInfo.processInfo.environment
        return environment["MEMGATE_CONFIG"] ?? "\(environment["HOME"] ?? "/root")/.config/memgate/config.json"
    }

    /// The config as it is on disk (empty when there is no file yet).
    static func load() throws -> ContextConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) {
                throw CtlFailure.failed("cannot read the config file \(path)")
            }
            return ContextConfig()
        }
        do {
            return try ContextConfig(bytes: [UInt8](data), path: path)
        } catch {
            throw CtlFailure.usage(error.message)
        }
    }

    /// Writes the config whole (a temporary file renamed over it, mode 0600: it names token files).
    static func save(_ config: ContextConfig) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let temporary = url.deletingLastPathComponent().appendingPathComponent(
                ".\(url.lastPathComponent).\(getpid()).tmp")
            try Data(config.rendered().utf8).write(to: temporary)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: temporary.path)
            if rename(temporary.path, url.path) != 0 {
                throw CtlFailure.failed("cannot replace \(path): \(String(cString: strerror(errno)))")
            }
        } catch let failure as CtlFailure {
            throw failure
        } catch {
            throw CtlFailure.failed("cannot write \(path): \(error.localizedDescription)")
        }
    }

    struct GetContexts: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get-contexts", abstract: "Every context, the current one marked with *.")
        @Flag(name: .customLong("json"), help: "As JSON.") var json = false

        struct Row: Codable {
            var name: String
            var current: Bool
            var hosts: String?
            var tokenFile: String?
            var select: [String]
        }

        func run() throws {
            let config = try ConfigCommand.load()
            let rows = config.contexts.keys.sorted().map { name in
                let context = config.contexts[name] ?? ContextConfig.Context()
                return Row(
                    name: name, current: name == config.currentContext, hosts: context.hosts,
                    tokenFile: context.tokenFile, select: context.select)
            }
            if json { return try Out.json(["items": rows]) }
            var table = Table(["CURRENT", "NAME", "HOSTS", "TOKEN FILE", "SELECT"])
            for row in rows {
                table.add([
                    row.current ? "*" : "", row.name, row.hosts ?? "-", row.tokenFile ?? "-",
                    row.select.isEmpty ? "-" : row.select.joined(separator: ","),
                ])
            }
            Out.line(table.render())
        }
    }

    struct CurrentContext: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "current-context", abstract: "The current context's name (exit 1 when none is set).")

        func run() throws {
            guard let name = try ConfigCommand.load().currentContext else {
                throw CtlFailure.failed(
                    "no current context in \(ConfigCommand.path) (memgatectl config use-context NAME)")
            }
            Out.line(name)
        }
    }

    struct UseContext: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "use-context", abstract: "Make NAME the current context.")
        @Argument(help: "A context of the config file.", completion: .custom(CompletionSources.contextNames)) var name:
            String

        func run() throws {
            var config = try ConfigCommand.load()
            guard config.contexts[name] != nil else {
                throw CtlFailure.usage(
                    "no context \(name) in \(ConfigCommand.path) (it has: \(config.contexts.keys.sorted().joined(separator: ", ")))"
                )
            }
            config.currentContext = name
            try ConfigCommand.save(config)
            Out.line("switched to context \(name)")
        }
    }

    struct SetContext: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-context", abstract: "Create context NAME, or change the fields given (the others stay).")
        @Argument(help: "The context's name.") var name: String
        @Option(help: "Its hosts file.") var hosts: String?
        @Option(help: "Its token file.") var tokenFile: String?
        @Option(help: "A label=value its hosts must have (repeatable; replaces the context's list).") var select:
            [String] = []
        @Option(help: "CA certificates for https:// agents.") var caFile: String?
        @Option(help: "Client certificate (PEM).") var clientCert: String?
        @Option(help: "Client key (PEM).") var clientKey: String?
        @Flag(help: "Also make it the current context.") var use = false

        func validate() throws {
            guard !name.isEmpty, name.utf8.count <= 128, !name.contains(where: { $0.isWhitespace || $0.isNewline })
            else {
                throw ValidationError("the context name must be 1-128 characters without white space")
            }
            for item in select where !item.contains("=") {
                throw ValidationError("--select takes label=value, not \(item)")
            }
        }

        func run() throws {
            var config = try ConfigCommand.load()
            var context = config.contexts[name] ?? ContextConfig.Context()
            if let hosts { context.hosts = hosts }
            if let tokenFile { context.tokenFile = tokenFile }
            if !select.isEmpty { context.select = select }
            if let caFile { context.caFile = caFile }
            if let clientCert { context.clientCert = clientCert }
            if let clientKey { context.clientKey = clientKey }
            let created = config.contexts[name] == nil
            config.contexts[name] = context
            if use { config.currentContext = name }
            try ConfigCommand.save(config)
            Out.line("\(created ? "created" : "changed") context \(name)\(use ? "; it is the current context" : "")")
        }
    }
}
