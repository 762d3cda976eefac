import ArgumentParser
import Controller
import Foundation

/// Which hosts, how to reach them, how to print: shared by every command.
struct FleetOptions: ParsableArguments {
    /// The transport's own defaults are the flags' defaults: one source for each.
    private static let transport = TransportOptions()

    @Option(
        help:
            "Hosts file: one `URL [NAME] [key=value ...]` a line, # comments (default: MEMGATE_HOSTS, then the context's).",
        completion: .file())
    var hosts: String?

    @Option(
        help:
            "The context of the config file to use (MEMGATE_CONFIG, else ~/.config/memgate/config.json; default: its current_context).",
        completion: .custom(CompletionSources.contextNames))
    var context: String?

    @Option(
        name: .customLong("host"),
        help: "An agent URL: http://HOST:PORT, https://HOST:PORT or unix:///PATH (repeatable).")
    var hostURLs: [String] = []

    @Option(help: "Only hosts with this label=value (repeatable; all must match).")
    var select: [String] = []

    @Option(help: "File holding the bearer token (default: MEMGATE_TOKEN, then the context's).")
    var tokenFile: String?

    @Option(help: "Requests in flight at once (1-1024).")
    var concurrency = Self.transport.concurrency

    @Option(help: "Seconds to connect to a host (0.1-300; 3, 500ms, 3s).", transform: DurationFlag.seconds)
    var connectTimeout = Double(Self.transport.connectTimeoutMilliseconds) / 1000

    @Option(help: "Seconds for a whole request (0.1-3600; 15, 15s, 1m).", transform: DurationFlag.seconds)
    var timeout = Double(Self.transport.totalTimeoutMilliseconds) / 1000

    @Option(help: "Extra attempts for idempotent requests (0-10).")
    var retries = Self.transport.retries

    @Option(
        help:
            "Seconds one host may take in all, retries included (0.1-3600: 20, 20s, 1m); no host holds a command up longer. A command of several phases (policy push: replay then write; vm commands: lookup then write) gets it once, for all of them.",
        transform: DurationFlag.seconds)
    var deadline = Double(Self.transport.hostDeadlineMilliseconds) / 1000

    @Option(help: "CA certificates for https:// agents.")
    var caFile: String?

    @Option(help: "Client certificate (PEM) for https:// agents.")
    var clientCert: String?

    @Option(help: "Client key (PEM) for --client-cert.")
    var clientKey: String?

    @Option(
        name: [.customShort("o"), .customLong("output")],
        help:
            "table, wide (more columns where a command has them), json (a stable shape, documented in the README), yaml (the same shape), name (HOST/NAME per item) or jsonpath=EXPR; attached as kubectl takes it (-ojson) or not.",
        completion: .list(OutputFormat.allValueStrings.map { $0 == "jsonpath=EXPR" ? "jsonpath=" : $0 }),
        transform: OutputFormat.parse)
    var output: OutputFormat = .table

    @Flag(name: .customLong("json"), help: "The same as -o json.")
    var jsonFlag = false

    @Flag(
        help:
            "A table row for every host even in a large fleet (past \(FleetOptions.summaryAbove) hosts, only hosts that failed get one, then a summary)."
    )
    var verbose = false

    /// Tables longer than this show only the hosts that failed, and a summary, unless --verbose.
    static let summaryAbove = 100

    /// Whether a table of `hosts` rows shows them all.
    func everyRow(hosts: Int) -> Bool { verbose || hosts <= Self.summaryAbove }

    var format: OutputFormat { jsonFlag ? .json : output }
    /// Structured output (json or jsonpath) rather than a table.
    var json: Bool { format.isStructured }
    var wide: Bool { format == .wide }

    func validate() throws {
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 1024") }
        guard connectTimeout >= 0.1, connectTimeout <= 300 else {
            throw ValidationError("--connect-timeout must be from 0.1 to 300 seconds")
        }
        guard timeout >= 0.1, timeout <= 3600 else {
            throw ValidationError("--timeout must be from 0.1 to 3600 seconds")
        }
        guard (0...10).contains(retries) else { throw ValidationError("--retries must be from 0 to 10") }
        guard deadline >= 0.1, deadline <= 3600 else {
            throw ValidationError("--deadline must be from 0.1 to 3600 seconds")
        }
    }

    /// The selected hosts and a client for them.
    func fleet() throws -> FleetClient {
        let context = try configContext()
        let entries = try selectedEntries(context)
        guard !entries.isEmpty else {
            throw CtlFailure.usage(
                select.isEmpty && (context?.select ?? []).isEmpty
                    ? "no hosts: give --hosts FILE, --host URL, MEMGATE_HOSTS (URLs or a hosts file) or a config context"
                    : "no host matches --select \((select + (context?.select ?? [])).joined(separator: " "))")
        }
        return try client(entries, context)
    }

    /// A client for one host: an inventory host by name or URL, or any agent URL.
    /// - Parameter bounded: the whole command (name lookup, the write, and anything after) ends within --deadline;
    ///   false for a command that follows (a console with -f) or walks many VMs.
    func oneHost(_ name: String, bounded: Bool = true) throws -> (FleetClient, Int) {
        let context = try configContext()
        let entries = try selectedEntries(context)
        let limit = { (client: FleetClient) in bounded ? client.within(seconds: deadline) : client }
        if let index = entries.firstIndex(where: { $0.name == name || $0.url == name }) {
            return (limit(try client(entries, context)), index)
        }
        if let entry = try? HostEntry(url: name) { return (limit(try client([entry], context)), 0) }
        throw CtlFailure.usage(
            entries.isEmpty
                ? "\(name) is not an agent URL (http://HOST:PORT, https://HOST:PORT or unix:///PATH), and no inventory was given"
                : "no host named \(name) among \(entries.map(\.name).joined(separator: ", ")); give a name from the inventory or an agent URL"
        )
    }

    func configContext() throws -> ContextConfig.Context? {
        let environment = ProcessInfo.processInfo.environment
        let explicit = environment["MEMGATE_CONFIG"]
        let path = explicit ?? (environment["HOME"].map { "\($0)/.config/memgate/config.json" } ?? "")
        guard let data = FileManager.default.contents(atPath: path) else {
            if explicit != nil || context != nil { throw CtlFailure.usage("cannot read the config file \(path)") }
            return nil
        }
        do {
            return try ContextConfig(bytes: [UInt8](data), path: path).context(context)
        } catch {
            throw CtlFailure.usage(error.message)
        }
    }

    func selectedEntries(_ context: ContextConfig.Context?) throws -> [HostEntry] {
        var entries: [HostEntry] = []
        do {
            let environment = ProcessInfo.processInfo.environment["MEMGATE_HOSTS"].flatMap { $0.isEmpty ? nil : $0 }
            if let file = hosts {
                entries += try Self.inventory(file)
            }
            for url in hostURLs { entries.append(try HostEntry(url: url)) }
            if hosts == nil, hostURLs.isEmpty {
                if let environment {
                    // A list of URLs, or the path of a hosts file.
                    entries =
                        environment.contains("://")
                        ? try Inventory.parseList(environment) : try Self.inventory(environment)
                } else if let file = context?.hosts {
                    entries = try Self.inventory(file)
                }
            }
            entries = try Inventory.select(entries, where: select + (context?.select ?? []))
            try Inventory.checkUniqueNames(entries)
        } catch let error as InventoryError {
            throw CtlFailure.usage(error.message)
        }
        return entries
    }

    static func inventory(_ file: String) throws -> [HostEntry] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CtlFailure.usage("cannot read the hosts file \(file)")
        }
        return try Inventory.parse(text, source: file)
    }

    func client(_ entries: [HostEntry], _ context: ContextConfig.Context?) throws -> FleetClient {
        let options = try transportOptions(context)
        try Self.requireToken(options.token, for: entries)
        do {
            let endpoints = entries.compactMap { Endpoint($0.url) }
            return FleetClient(hosts: entries, transport: try CurlTransport(endpoints: endpoints, options: options))
        } catch {
            throw CtlFailure.usage("\(error)")
        }
    }

    /// The selected hosts and a follower of their event streams.
    func follower(path: String) throws -> ([HostEntry], CurlEventFollower) {
        let context = try configContext()
        let entries = try selectedEntries(context)
        guard !entries.isEmpty else {
            throw CtlFailure.usage("no hosts: give --hosts FILE, --host URL, MEMGATE_HOSTS or a config context")
        }
        let options = try transportOptions(context)
        try Self.requireToken(options.token, for: entries)
        do {
            return (
                entries,
                try CurlEventFollower(endpoints: entries.compactMap { Endpoint($0.url) }, options: options, path: path)
            )
        } catch {
            throw CtlFailure.usage("\(error)")
        }
    }

    func transportOptions(_ context: ContextConfig.Context?) throws -> TransportOptions {
        var options = TransportOptions()
        options.concurrency = concurrency
        options.connectTimeoutMilliseconds = Int(connectTimeout * 1000)
        options.totalTimeoutMilliseconds = Int(timeout * 1000)
        options.retries = retries
        options.hostDeadlineMilliseconds = Int(deadline * 1000)
        options.token = try token(context)
        options.caFile = caFile ?? context?.caFile
        options.clientCertificate = clientCert ?? context?.clientCert
        options.clientKey = clientKey ?? context?.clientKey
        if isatty(2) != 0 && !json {
            options.progress = { done, total in
                FileHandle.standardError.write(
                    Data(
                        "\r\u{1B}[2Kmemgatectl: \(done)/\(total) requests done\(done == total ? "\r\u{1B}[2K" : "")"
                            .utf8))
            }
        }
        return options
    }

    /// No token and a host reached over TCP (which answers every /v1 request with 401 without one): one local line,
    /// not a 401 from every host. Unix-socket hosts need none.
    static func requireToken(_ token: String?, for entries: [HostEntry]) throws {
        guard token == nil, entries.contains(where: { !$0.url.hasPrefix("unix://") }) else { return }
        throw CtlFailure.usage(
            "no token: give --token-file FILE, set MEMGATE_TOKEN, or name a token_file in the context (hosts on unix:// need none)"
        )
    }

    func token(_ context: ContextConfig.Context?) throws -> String? {
        let environment = ProcessInfo.processInfo.environment["MEMGATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if tokenFile == nil, environment == nil, let file = context?.tokenFile { return try Self.readToken(file) }
        if let tokenFile { return try Self.readToken(tokenFile) }
        return environment
    }

    static func readToken(_ tokenFile: String) throws -> String? {
        guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
            throw CtlFailure.usage("cannot read the token file \(tokenFile)")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: \.isWhitespace) else {
            throw CtlFailure.usage("the token file \(tokenFile) must hold the token alone")
        }
        return token
    }
}
