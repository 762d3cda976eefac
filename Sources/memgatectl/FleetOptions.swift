import ArgumentParser
import Controller
import Foundation

/// Which hosts, how to reach them, how to print: shared by every command.
struct FleetOptions: ParsableArguments {
    @Option(help: "Hosts file: one `URL [NAME] [key=value ...]` a line, # comments.")
    var hosts: String?

    @Option(name: .customLong("host"), help: "An agent URL: http://HOST:PORT, https://HOST:PORT or unix:///PATH (repeatable).")
    var hostURLs: [String] = []

    @Option(help: "Only hosts with this label=value (repeatable; all must match).")
    var select: [String] = []

    @Option(help: "File holding the bearer token (default: MEMGATE_TOKEN).")
    var tokenFile: String?

    @Option(help: "Requests in flight at once (1-1024).")
    var concurrency: Int = 64

    @Option(help: "Seconds to connect to a host (0.1-300).")
    var connectTimeout: Double = 3

    @Option(help: "Seconds for a whole request (0.1-3600).")
    var timeout: Double = 15

    @Option(help: "Extra attempts for idempotent requests (0-10).")
    var retries: Int = 2

    @Option(help: "CA certificates for https:// agents.")
    var caFile: String?

    @Option(help: "Client certificate (PEM) for https:// agents.")
    var clientCert: String?

    @Option(help: "Client key (PEM) for --client-cert.")
    var clientKey: String?

    @Flag(help: "Print JSON (a stable shape, documented in the README) instead of tables.")
    var json = false

    func validate() throws {
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 1024") }
        guard connectTimeout >= 0.1, connectTimeout <= 300 else { throw ValidationError("--connect-timeout must be from 0.1 to 300 seconds") }
        guard timeout >= 0.1, timeout <= 3600 else { throw ValidationError("--timeout must be from 0.1 to 3600 seconds") }
        guard (0...10).contains(retries) else { throw ValidationError("--retries must be from 0 to 10") }
    }

    /// The selected hosts and a client for them.
    func fleet() throws -> FleetClient {
        var entries: [HostEntry] = []
        do {
            if let hosts {
                guard let text = try? String(contentsOfFile: hosts, encoding: .utf8) else { throw CtlFailure.usage("cannot read --hosts \(hosts)") }
                entries += try Inventory.parse(text, source: hosts)
            }
            for url in hostURLs { entries.append(try HostEntry(url: url)) }
            if entries.isEmpty, let environment = ProcessInfo.processInfo.environment["MEMGATE_HOSTS"] {
                entries = try Inventory.parseList(environment)
            }
            entries = try Inventory.select(entries, where: select)
            try Inventory.checkUniqueNames(entries)
        } catch let error as InventoryError {
            throw CtlFailure.usage(error.message)
        }
        guard !entries.isEmpty else {
            throw CtlFailure.usage(select.isEmpty ? "no hosts: give --hosts FILE, --host URL or MEMGATE_HOSTS" : "no host matches --select \(select.joined(separator: " "))")
        }
        var options = TransportOptions()
        options.concurrency = concurrency
        options.connectTimeoutMilliseconds = Int(connectTimeout * 1000)
        options.totalTimeoutMilliseconds = Int(timeout * 1000)
        options.retries = retries
        options.token = try token()
        options.caFile = caFile
        options.clientCertificate = clientCert
        options.clientKey = clientKey
        if isatty(2) != 0 && !json {
            options.progress = { done, total in
                FileHandle.standardError.write(Data("\r\u{1B}[2Kmemgatectl: \(done)/\(total) requests done\(done == total ? "\r\u{1B}[2K" : "")".utf8))
            }
        }
        do {
            let endpoints = entries.compactMap { Endpoint($0.url) }
            return FleetClient(hosts: entries, transport: try CurlTransport(endpoints: endpoints, options: options))
        } catch {
            throw CtlFailure.usage("\(error)")
        }
    }

    func token() throws -> String? {
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { throw CtlFailure.usage("cannot read --token-file \(tokenFile)") }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, !token.contains(where: \.isWhitespace) else {
                throw CtlFailure.usage("--token-file \(tokenFile) must hold the token alone")
            }
            return token
        }
        return ProcessInfo.processInfo.environment["MEMGATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }
}
