/// `POST /v1/vms` body.
public struct VMCreateRequest: Codable, Sendable, Equatable {
    public var name: String
    /// An ELF path relative to the agent's `--images-dir`.
    public var image: String
    public var memoryMib: UInt64?
    public var vcpus: Int?
    public var commandLine: String?
    public var labels: [String: String]?
    /// `alias` or `attributes`; default: what the host supports best.
    public var backend: String?
    /// `private` (default) or `shared`.
    public var initialState: String?
    /// Start at once (default true).
    public var start: Bool?

    public init(
        name: String, image: String, memoryMib: UInt64? = nil, vcpus: Int? = nil, commandLine: String? = nil,
        labels: [String: String]? = nil, backend: String? = nil, initialState: String? = nil, start: Bool? = nil
    ) {
        self.name = name
        self.image = image
        self.memoryMib = memoryMib
        self.vcpus = vcpus
        self.commandLine = commandLine
        self.labels = labels
        self.backend = backend
        self.initialState = initialState
        self.start = start
    }
}

/// A VM as the agent knows it.
public struct VMInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// created, running, paused, stopped, crashed, failed, faulted.
    public var state: String
    /// Why it ended, once it has.
    public var reason: String?
    public var exitStatus: Int32?
    public var image: String
    public var memoryMib: UInt64
    public var vcpus: Int
    public var backend: String
    public var initialState: String
    public var commandLine: String
    public var labels: [String: String]
    public var createdNs: UInt64
    public var startedNs: UInt64?
    public var endedNs: UInt64?
    public var privateBytes: UInt64
    public var sharedBytes: UInt64
    /// Conversions by decision (applied, denied, invalid, failed).
    public var conversions: [String: Int]
    public var memoryFaults: Int
    /// Console bytes the guest has written so far.
    public var consoleBytes: Int
    /// The VM's own process (absent: inside the agent, or ended).
    public var pid: Int32?
    /// The policy version the VM enforces (absent: the agent's, shared).
    public var policyVersion: String?
    /// Records that waited for room in the VM's ring (no agent draining it), and how long in all.
    public var ringWaits: UInt64?
    public var ringWaitSeconds: Double?
    /// Connections the VM's process refused or ended: another user's, or a bad or oversized message.
    public var refusedConnections: Int?

    public init(
        id: Int64, name: String, state: String, reason: String?, exitStatus: Int32?, image: String,
        memoryMib: UInt64, vcpus: Int, backend: String, initialState: String, commandLine: String,
        labels: [String: String], createdNs: UInt64, startedNs: UInt64?, endedNs: UInt64?,
        privateBytes: UInt64, sharedBytes: UInt64, conversions: [String: Int], memoryFaults: Int, consoleBytes: Int
    ) {
        self.id = id
        self.name = name
        self.state = state
        self.reason = reason
        self.exitStatus = exitStatus
        self.image = image
        self.memoryMib = memoryMib
        self.vcpus = vcpus
        self.backend = backend
        self.initialState = initialState
        self.commandLine = commandLine
        self.labels = labels
        self.createdNs = createdNs
        self.startedNs = startedNs
        self.endedNs = endedNs
        self.privateBytes = privateBytes
        self.sharedBytes = sharedBytes
        self.conversions = conversions
        self.memoryFaults = memoryFaults
        self.consoleBytes = consoleBytes
    }
}

public struct VMList: Codable, Sendable, Equatable {
    public var vms: [VMInfo]
    public init(vms: [VMInfo]) { self.vms = vms }
}

/// One maximal run of pages in the same state.
public struct MemoryRun: Codable, Sendable, Equatable {
    public var start: UInt64
    public var end: UInt64
    /// private or shared.
    public var state: String
    public init(start: UInt64, end: UInt64, state: String) {
        self.start = start
        self.end = end
        self.state = state
    }
}

/// `GET /v1/vms/{id}/memory`: the live page-state map.
public struct VMMemory: Codable, Sendable, Equatable {
    public var vmId: Int64
    /// The boot region [start, end): never convertible.
    public var bootRegion: MemoryRun
    public var dataRamStart: UInt64
    public var dataRamEnd: UInt64
    public var privateBytes: UInt64
    public var sharedBytes: UInt64
    public var runs: [MemoryRun]
    /// With `?at=`: the moment asked for (an event id, or a time), and the last applied conversion the state includes.
    public var atEventId: Int64?
    public var atNs: UInt64?
    public var throughEventId: Int64?

    public init(
        vmId: Int64, bootRegion: MemoryRun, dataRamStart: UInt64, dataRamEnd: UInt64, privateBytes: UInt64,
        sharedBytes: UInt64, runs: [MemoryRun], atEventId: Int64? = nil, atNs: UInt64? = nil,
        throughEventId: Int64? = nil
    ) {
        self.vmId = vmId
        self.bootRegion = bootRegion
        self.dataRamStart = dataRamStart
        self.dataRamEnd = dataRamEnd
        self.privateBytes = privateBytes
        self.sharedBytes = sharedBytes
        self.runs = runs
        self.atEventId = atEventId
        self.atNs = atNs
        self.throughEventId = throughEventId
    }
}

/// `GET /v1/vms/{id}/console?after=N`: console bytes from offset `offset` on.
public struct ConsoleChunk: Codable, Sendable, Equatable {
    public var vmId: Int64
    /// Offset of the first byte of `data` in everything the guest wrote.
    public var offset: Int
    /// Where the next request should start (`after=`).
    public var nextOffset: Int
    /// Bytes asked for that are no longer retained (overwritten in the ring).
    public var droppedBytes: Int
    /// The bytes, as UTF-8 text (invalid sequences replaced).
    public var data: String

    public init(vmId: Int64, offset: Int, nextOffset: Int, droppedBytes: Int, data: String) {
        self.vmId = vmId
        self.offset = offset
        self.nextOffset = nextOffset
        self.droppedBytes = droppedBytes
        self.data = data
    }
}
