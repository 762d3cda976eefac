import ArgumentParser
import CLinux
import EventStore
import Foundation
import Glibc
import KVM
import Logging
import Platform
import VMProcess

/// `memgate-agent vm`: the VM processes `serve` starts, seen from outside.
struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "The VM processes of a run directory: list them, or stop them while no agent runs.",
        discussion: """
            `serve` runs each VM in a process of its own (`memgate-agent vm process`, not meant for people), \
            which keeps its guest running when the agent exits, crashes or is upgraded. The next `serve` on the \
            same --db and --run-dir adopts it. To end such VMs without an agent, use `vm stop`: each VM records \
            how it ended in its ring, and the next agent commits it.
            """,
        subcommands: [VMListCommand.self, VMStopCommand.self, VMProcessCommand.self])
}

struct RunDirectoryOption: ParsableArguments {
    @Option(help: "The agent's run directory (its VM sockets, rings and logs).")
    var runDir: String = RunDirectory.defaultPath

    func open() throws(AgentFailure) -> RunDirectory {
        do throws(RunDirectoryError) {
            return try RunDirectory(path: runDir)
        } catch {
            throw .usage("--run-dir \(error)")
        }
    }
}

struct VMListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the VM processes of a run directory.")
    @OptionGroup var directory: RunDirectoryOption

    func run() throws {
        let runDirectory = try directory.open()
        print("ID\tPID\tSTATE\tPOLICY")
        for id in runDirectory.vmIDs() {
            do throws(VMChannelError) {
                let reply = try VMProcessClient.ask(runDirectory, vmID: id, VMRequest(.hello))
                print(
                    "\(id)\t\(reply.pid.map(String.init) ?? "-")\t\(reply.state ?? "-")\t\(reply.policyVersion?.prefix(12) ?? "-")"
                )
            } catch {
                print("\(id)\t-\tunreachable: \(error)")
            }
        }
    }
}

struct VMStopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop VM processes (their ends are committed by the next agent that starts).")
    @OptionGroup var directory: RunDirectoryOption
    @Option(help: "The VM to stop.")
    var id: Int64?
    @Flag(help: "Stop every VM process of the run directory.")
    var all = false
    @Option(help: "Why, as recorded.")
    var reason = "stopped with memgate-agent vm stop"

    func validate() throws {
        guard (id == nil) != !all else { throw ValidationError("give --id ID or --all") }
    }

    func run() throws {
        let runDirectory = try directory.open()
        let ids = id.map { [$0] } ?? runDirectory.vmIDs()
        var failed: [String] = []
        for id in ids {
            do throws(VMChannelError) {
                let reply = try VMProcessClient.ask(runDirectory, vmID: id, VMRequest(.stop, reason: reason))
                if reply.ok {
                    print("VM \(id): stopping")
                } else {
                    failed.append("VM \(id): \(reply.error ?? "refused")")
                }
            } catch {
                failed.append("VM \(id): \(error)")
            }
        }
        guard failed.isEmpty else { throw AgentFailure.vmProcess(failed.joined(separator: "\n")) }
    }
}

/// The VM process itself: started by `serve` with its spec on fd 3, its image on fd 4,
/// its ready pipe on stdout and its log on stderr.
struct VMProcessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process", abstract: "Run one VM for an agent (started by serve; not meant for people).",
        shouldDisplay: false)
    @OptionGroup var directory: RunDirectoryOption
    @Option(help: "The VM's id in the agent's store.")
    var vmId: Int64?
    @Flag(help: "Start ahead of need: the VM's id comes with its spec.")
    var spare = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (vmId == nil) == spare else { throw ValidationError("give --vm-id ID, or --spare") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        var logger = logging.makeLogger(label: "memgate.vm")
        if let vmId { logger[metadataKey: "vm_id"] = "\(vmId)" }
        func fail(_ message: String) -> Never {
            report(VMReady(error: message))
            logger.error("VM process not started", metadata: ["error": "\(message)"])
            Glibc.exit(1)
        }
        let specBytes = readAll(3)
        let image = readAll(4)
        Glibc.close(3)
        Glibc.close(4)
        guard let spec = WireCoding.decode(VMProcessSpec.self, from: Data(specBytes)), spec.vmID == vmId ?? spec.vmID,
            spare || vmId != nil
        else {
            fail("the VM spec on descriptor 3 is missing or not for VM \(vmId.map(String.init) ?? "(spare)")")
        }
        logger[metadataKey: "vm_id"] = "\(spec.vmID)"
        let runDirectory: RunDirectory
        do { runDirectory = try directory.open() } catch { fail("\(error)") }
        // Before any guest memory exists, so all of it is charged to the VM's own cgroup.
        let cgroup = CgroupPlacement().placeSelf(
            vmID: spec.vmID,
            memoryMax: CgroupPlacement.memoryMax(
                memoryBytes: spec.memoryBytes,
                ringBytes: spec.ringBytes))
        let system: KVM.System
        do { system = try openKVM() } catch { fail("\(error)") }
        let server: VMProcessServer
        do throws(VMProcessServer.StartError) {
            server = try VMProcessServer(
                spec: spec, image: image, runDirectory: runDirectory, system: system, logger: logger)
        } catch {
            fail(error.description)
        }
        // Opened before the filter, which refuses opening files.
        let devNull = Glibc.open("/dev/null", O_WRONLY | O_CLOEXEC)
        let confinement = server.confine()
        var ready = server.ready
        if spec.startAtOnce {
            if let refusal = server.startGuest() {
                logger.error("the guest did not start", metadata: ["error": "\(refusal)"])
            } else {
                ready.startedNanos = MonotonicClock.wallNanos()
            }
        }
        report(ready)
        server.readyWasReported()
        // The ready pipe is done: stdout goes nowhere, so a gone agent never blocks or kills this process.
        if devNull >= 0 {
            dup2(devNull, 1)
            Glibc.close(devNull)
        }
        logger.info("VM process ready", metadata: ["pid": "\(getpid())", "confinement": "\(confinement + [cgroup])"])
        server.serve()
    }

    private func report(_ ready: VMReady) {
        var line = [UInt8](WireCoding.encode(ready))
        line.append(UInt8(ascii: "\n"))
        // Safety: write from our array's storage within its count, to stdout (the ready pipe).
        _ = line.withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
    }

    private func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        _ = lseek(fd, 0, SEEK_SET)
        while true {
            // Safety: read into our buffer within its count.
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return out }
            out += buffer[0..<count]
        }
    }
}
