import AgentAPI
import AgentHost
import ArgumentParser
import EventStore
import Foundation
import HTTPServer
import KVM
import Logging
import MemoryModel
import Platform
import VMM
import VMProcess

struct ServeCommand: ParsableCommand {
    /// The server's own defaults are the flags' defaults: one source for each.
    private static let server = HTTPServerConfiguration()
    private static let streams = EventStreamHub.Limits()

    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the agent daemon: host VMs and serve REST API v1 on TCP and a Unix socket.",
        discussion: """
            On TCP every /v1 request needs `Authorization: Bearer <token>` from --token-file \
            (lines `NAME ROLE SECRET`, ROLE admin or read-only, file mode 0600); /healthz and /metrics stay open. \
            The Unix socket is created 0600 and needs no token. Each VM runs in a process of its own \
            (--run-dir): SIGTERM or SIGINT commits what the VMs recorded and exits 0, and the VMs keep running \
            until the next serve on the same --db and --run-dir adopts them. With --stop-vms-on-exit (or \
            --vms-in-agent) it stops every VM and records how each ended first.
            """)

    @Option(help: "TCP address to listen on, HOST:PORT (port 0 picks a free one; 'none' for no TCP).")
    var listen: String = "127.0.0.1:8620"

    @Option(help: "Unix socket to listen on as well (created 0600).")
    var unix: String?

    @OptionGroup var recording: RecordingOptions

    @Option(help: "Directory of guest images that POST /v1/vms may launch (nothing outside it).")
    var imagesDir: String?

    @Option(help: "Bearer tokens for TCP clients: one `NAME ROLE SECRET` a line (mode 0600).")
    var tokenFile: String?

    @Option(help: "Most simultaneous connections (1-100000); beyond it, 503.")
    var maxConnections = Self.server.limits.maxConnections

    @Option(
        help:
            "Most simultaneous TCP connections from one peer network (1-100000; see --ipv4-peer-prefix); beyond it, only the token reserve."
    )
    var maxConnectionsPerPeer = Self.server.limits.maxConnectionsPerPeer

    @Option(
        help:
            "Leading bits of an IPv4 address that make one peer for the per-peer cap and the credential throttles (8-32)."
    )
    var ipv4PeerPrefix = Self.server.limits.peerPrefix.ipv4Bits

    @Option(
        help:
            "Leading bits of an IPv6 address that make one peer for the per-peer cap and the credential throttles (16-128)."
    )
    var ipv6PeerPrefix = Self.server.limits.peerPrefix.ipv6Bits

    @Option(
        help:
            "TCP connections past --max-connections (or a network's cap) that only a request with a valid token may hold (0-100000)."
    )
    var tokenReservedConnections = 256

    @Option(help: "Unix-socket connections at most (1-4096): slots of their own that TCP clients cannot take.")
    var maxUnixConnections = Self.server.limits.maxUnixConnections

    @Option(help: "Seconds a request may take from its first byte to the end of its headers (0.1-3600); then 408.")
    var headerTimeout = Double(Self.server.limits.headerTimeoutNanos) / 1e9

    @Option(
        help:
            "Seconds a request body may take from the end of the headers, however it trickles in (0.1-3600); then 408.")
    var bodyTimeout = Double(Self.server.limits.bodyTimeoutNanos) / 1e9

    @Option(
        help: "Seconds a response may wait for a client that does not read it (0.1-3600); then the connection closes.")
    var writeStallTimeout = Double(Self.server.limits.writeStallTimeoutNanos) / 1e9

    @Option(help: "Worker threads for requests that may block (1-256).")
    var workers = Self.server.workerThreads

    @Option(name: .customLong("max-vms"), help: "Most VMs this agent holds at once (1-4096).")
    var maxVMs: Int = 64

    @Option(help: "How alias-backend VMs convert: protect or memslot (default: what the start-up probe chose).")
    var aliasMechanism: AliasMechanism?

    @Option(help: "Event streams (GET /v1/events/stream) open at once (1-100000); one more gets 503.")
    var maxStreams = Self.streams.maxStreams

    @Option(help: "Event streams one token or session may hold at once (1-100000).")
    var maxStreamsPerPrincipal = Self.streams.maxStreamsPerPrincipal

    @Option(help: "Event stream slots only admin tokens may take (0 to --max-streams minus 1).")
    var adminStreamReserve = Self.streams.adminReserve

    @Option(
        help:
            "Unsent bytes an event stream's reader may fall behind before it is sent overflow and closed (65536-67108864)."
    )
    var streamBuffer = Self.streams.bufferBytes

    @Option(
        help:
            "Unsent event-stream bytes across all readers (1048576-4294967296); each reader's share is this over the readers open."
    )
    var streamBufferTotal = Self.streams.totalBufferBytes

    @Option(help: "Seconds between the event stream's heartbeat comments (0.1-3600).")
    var streamHeartbeat = Double(Self.streams.heartbeatNanos) / 1e9

    @Option(help: "Seconds a status-page sign-in lasts (60-604800).")
    var sessionTtl: Double = 43_200

    @Flag(help: "Mark the session cookie Secure (when browsers reach the agent through TLS).")
    var cookieSecure = false

    @Option(
        help: "Directory of the VM processes' sockets, rings and logs (created 0700; default /run/memgate for root).")
    var runDir: String = RunDirectory.defaultPath

    @Option(
        help:
            "Bytes of each VM's record ring (a power of two, 65536-1073741824): how much a VM records with no agent draining it before its conversions wait."
    )
    var vmRingBytes = VMRing.defaultCapacity

    @Flag(
        name: .customLong("stop-vms-on-exit"),
        help: "Stop every VM when the agent exits (default: VMs keep running and the next agent adopts them).")
    var stopVMsOnExit = false

    @Flag(
        help: "Run VMs inside the agent's process: they end with it (always so with --no-record or --durability full).")
    var vmsInAgent = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...100_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be from 1 to 100000")
        }
        guard (1...100_000).contains(maxConnectionsPerPeer) else {
            throw ValidationError("--max-connections-per-peer must be from 1 to 100000")
        }
        guard (1...4096).contains(maxUnixConnections) else {
            throw ValidationError("--max-unix-connections must be from 1 to 4096")
        }
        guard (8...32).contains(ipv4PeerPrefix) else {
            throw ValidationError("--ipv4-peer-prefix must be from 8 to 32 bits")
        }
        guard (16...128).contains(ipv6PeerPrefix) else {
            throw ValidationError("--ipv6-peer-prefix must be from 16 to 128 bits")
        }
        guard (0...100_000).contains(tokenReservedConnections) else {
            throw ValidationError("--token-reserved-connections must be from 0 to 100000")
        }
        for (flag, value) in [
            ("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout),
            ("--write-stall-timeout", writeStallTimeout),
        ] {
            guard value >= 0.1, value <= 3600 else { throw ValidationError("\(flag) must be from 0.1 to 3600 seconds") }
        }
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be from 1 to 256") }
        guard (1...4096).contains(maxVMs) else { throw ValidationError("--max-vms must be from 1 to 4096") }
        guard (1...100_000).contains(maxStreams) else {
            throw ValidationError("--max-streams must be from 1 to 100000")
        }
        guard (65_536...67_108_864).contains(streamBuffer) else {
            throw ValidationError("--stream-buffer must be from 65536 to 67108864 bytes")
        }
        guard (1...100_000).contains(maxStreamsPerPrincipal) else {
            throw ValidationError("--max-streams-per-principal must be from 1 to 100000")
        }
        guard adminStreamReserve >= 0, adminStreamReserve < maxStreams else {
            throw ValidationError("--admin-stream-reserve must be from 0 to --max-streams minus 1 (\(maxStreams - 1))")
        }
        guard (1 << 20...1 << 32).contains(streamBufferTotal) else {
            throw ValidationError("--stream-buffer-total must be from 1048576 to 4294967296 bytes")
        }
        guard streamHeartbeat >= 0.1, streamHeartbeat <= 3600 else {
            throw ValidationError("--stream-heartbeat must be from 0.1 to 3600 seconds")
        }
        guard sessionTtl >= 60, sessionTtl <= 604_800 else {
            throw ValidationError("--session-ttl must be from 60 to 604800 seconds")
        }
        if listen != "none", ListenAddress(listen) == nil {
            throw ValidationError(
                "--listen must be HOST:PORT with an IPv4 or [IPv6] literal and a port from 0 to 65535, or none")
        }
        guard (VMRing.minimumCapacity...VMRing.maximumCapacity).contains(vmRingBytes), vmRingBytes.nonzeroBitCount == 1
        else {
            throw ValidationError("--vm-ring-bytes must be a power of two from 65536 to 1073741824")
        }
        if listen == "none", unix == nil { throw ValidationError("with --listen none, give --unix PATH") }
    }

    /// The API tokens (none without --token-file: TCP clients are then refused, which is said).
    func loadTokens() throws -> TokenStore {
        guard let tokenFile else {
            if listen != "none" {
                printError("warning: no --token-file; every /v1 request over TCP will be refused (401)")
            }
            return TokenStore()
        }
        do throws(TokenFileError) {
            return try TokenStore.load(path: tokenFile)
        } catch {
            throw AgentFailure.tokens(error)
        }
    }

    func openImages() throws -> ImageDirectory? {
        guard let imagesDir else { return nil }
        do throws(ImageDirectoryError) {
            return try ImageDirectory(path: imagesDir)
        } catch {
            throw AgentFailure.images(error)
        }
    }

    /// Where VM processes live and how they log and record; the run directory's lock is held until this process ends.
    func processOptions() throws -> VMProcessOptions {
        do throws(RunDirectoryError) {
            let directory = try RunDirectory(path: runDir)
            // Held until this process ends (the descriptor is never closed).
            _ = try directory.lock()
            return VMProcessOptions(runDirectory: directory, logLevel: "\(logging.logLevel)", ringBytes: vmRingBytes)
        } catch {
            throw AgentFailure.usage("--run-dir \(error)")
        }
    }

    var peerPrefix: AddressPrefix { AddressPrefix(ipv4Bits: ipv4PeerPrefix, ipv6Bits: ipv6PeerPrefix) }

    func apiConfiguration(tokens: TokenStore, images: ImageDirectory?) -> AgentAPI.Configuration {
        var configuration = AgentAPI.Configuration(tokens: tokens, images: images)
        configuration.sessionLifetimeNanos = UInt64(sessionTtl * 1e9)
        configuration.secureCookie = cookieSecure
        configuration.streams.maxStreams = maxStreams
        configuration.streams.heartbeatNanos = UInt64(streamHeartbeat * 1e9)
        configuration.streams.bufferBytes = streamBuffer
        configuration.streams.maxStreamsPerPrincipal = maxStreamsPerPrincipal
        configuration.streams.adminReserve = adminStreamReserve
        configuration.streams.totalBufferBytes = streamBufferTotal
        configuration.peerPrefix = peerPrefix
        return configuration
    }

    func serverConfiguration() -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration(
            tcp: ListenAddress(listen).map { ($0.host, $0.port) }, unixPath: unix)
        configuration.limits.maxConnections = maxConnections
        configuration.limits.maxConnectionsPerPeer = maxConnectionsPerPeer
        configuration.limits.peerPrefix = peerPrefix
        configuration.limits.tokenReservedConnections = tokenReservedConnections
        configuration.limits.maxUnixConnections = maxUnixConnections
        configuration.limits.headerTimeoutNanos = UInt64(headerTimeout * 1e9)
        configuration.limits.bodyTimeoutNanos = UInt64(bodyTimeout * 1e9)
        configuration.limits.writeStallTimeoutNanos = UInt64(writeStallTimeout * 1e9)
        configuration.workerThreads = workers
        configuration.startsAtOnce = false
        return configuration
    }

    func run() throws {
        // Before any thread starts: termination signals are taken by sigwait below, SIGPIPE ignored.
        ProcessSignals.blockTermination()
        let logger = logging.makeLogger(label: "memgate.agent")
        let system = try openKVM()

        let tokens = try loadTokens(), images = try openImages()
        // VM processes record through rings the store drains, durable as the normal mode promises.
        let ownProcesses = !vmsInAgent && !recording.noRecord && recording.durability == .normal
        let processes = ownProcesses ? try processOptions() : nil
        let (store, inForce) = try recording.openWithPolicy(command: "serve", logger: logger, adoptsVMs: ownProcesses)
        let initialPolicy = inForce.policy
        let report = HostReport.probe(system: system, aliasMechanism: aliasMechanism, logger: logger)
        let host = AgentHost(
            system: system, store: store, policies: PolicyStore(initialPolicy), maxVMs: maxVMs,
            aliasMechanism: report.aliasMechanism, recordingBudget: recording.recordBudget, processes: processes,
            logger: logger)
        // Before anyone is answered: the VMs a previous agent left are adopted or closed.
        do throws(AgentHostError) {
            let adoption = try host.adopt()
            if !adoption.adopted.isEmpty || !adoption.closed.isEmpty || !adoption.refused.isEmpty {
                logger.notice(
                    "VMs of a previous agent",
                    metadata: [
                        "adopted": "\(adoption.adopted)", "closed": "\(adoption.closed)",
                        "ended": "\(adoption.ended.count)",
                        "refused": "\(adoption.refused)",
                    ])
            }
        } catch {
            store?.close()
            throw AgentFailure.usage("adopting the VMs of a previous agent: \(error)")
        }
        let snapshot = HostSnapshot(report: report)
        let api = AgentAPI(
            host: host, queries: store.map { EventQueries(store: $0) }, snapshot: snapshot,
            configuration: apiConfiguration(tokens: tokens, images: images), logger: logger)
        ProcessLimits.raiseFileLimit()
        let server: HTTPServer
        do {
            server = try HTTPServer(configuration: serverConfiguration(), handler: api, logger: logger)
        } catch {
            store?.close()
            throw AgentFailure.listen(error)
        }
        do {
            // Bound but not yet accepting: a start that failed before here left the history alone,
            // and no PUT /v1/policy can come before this row.
            try inForce.record(in: store)
        } catch {
            server.stop()
            store?.close()
            throw error
        }
        server.start()
        api.metrics.attach(server)
        var endpoints: [String] = []
        if let port = server.tcpPort, let address = ListenAddress(listen) {
            endpoints.append("http://\(address.urlHost):\(port)")
        }
        if let unix { endpoints.append("unix://\(unix)") }
        api.announce(endpoints: endpoints)
        // One line on stdout that scripts and tests read to find the port.
        FileHandle.standardOutput.write(Data("memgate-agent: serving on \(endpoints.joined(separator: " "))\n".utf8))
        logger.notice(
            "serving",
            metadata: [
                "endpoints": "\(endpoints.joined(separator: " "))",
                "db": "\(recording.noRecord ? "none" : recording.db)",
            ])

        // A failed store ends the agent too: it exists to record, and operators must notice.
        store?.onFailure { _ in ProcessSignals.requestTermination() }
        var signal = ProcessSignals.waitForSignal()
        while signal == SIGHUP {
            reloadTokens(into: api, logger: logger)
            signal = ProcessSignals.waitForSignal()
        }
        logger.notice("draining", metadata: ["signal": "\(signal)"])
        api.stopStreams()
        server.stop()
        api.flushAudit()
        let leaveRunning = ownProcesses && !stopVMsOnExit && host.recordingFailure == nil
        host.shutdown(reason: "the agent is shutting down (signal \(signal))", stopVMs: !leaveRunning)
        store?.close()
        if let failure = host.recordingFailure {
            throw AgentFailure.recordingFailed(failure, what: "every VM was failed and the agent stopped")
        }
        printError(
            leaveRunning
                ? "stopped: VMs keep running in their processes; the next serve on this --db and --run-dir adopts them"
                : "stopped: every VM ended and recorded")
    }
}

extension ServeCommand {
    /// SIGHUP: the token file again. A file that no longer loads keeps the tokens in force.
    func reloadTokens(into api: AgentAPI, logger: Logger) {
        guard let tokenFile else { return }
        do throws(TokenFileError) {
            let tokens = try TokenStore.load(path: tokenFile)
            api.reloadTokens(tokens)
            logger.notice("token file reloaded", metadata: ["tokens": "\(tokens.count)"])
        } catch {
            logger.error("token file not reloaded; the tokens in force stay", metadata: ["error": "\(error)"])
        }
    }
}

/// `HOST:PORT` with an IPv4 literal, `localhost`, or `[IPv6]`.
struct ListenAddress: Equatable {
    var host: String
    var port: UInt16

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { host = "127.0.0.1" }
        let isIPv4 =
            host.split(separator: ".", omittingEmptySubsequences: false).count == 4
            && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { UInt8($0) != nil }
        let isIPv6 = host.contains(":") && host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        guard isIPv4 || isIPv6 else { return nil }
        self.host = host
        self.port = port
    }

    var urlHost: String { host.contains(":") ? "[\(host)]" : host }
}
