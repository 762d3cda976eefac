import CGuestABI

/// How the guest must issue explicit conversion requests.
public enum ConversionTransport: UInt32, Sendable, Codable, CustomStringConvertible {
    /// `OUT 0xEB, AL` with the KVM_HC_MAP_GPA_RANGE register ABI.
    case port = 0
    /// `VMCALL`, where hypercall exits reach userspace.
    case vmcall = 1

    public var description: String { self == .port ? "port" : "vmcall" }

    /// In JSON (`caps --json`) by name, as `GET /v1/host` spells it, never by the ABI number.
    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        switch name {
        case "port": self = .port
        case "vmcall": self = .vmcall
        default:
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "unknown transport \(name)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The per-vCPU boot info (`struct mg_boot_info`), encoded with the offsets
/// the C compiler gives the shared header, so host and guest cannot disagree.
public struct BootInfo: Sendable, Equatable {
    public var vcpuIndex: UInt32
    public var vcpuCount: UInt32
    public var ramSize: UInt64
    public var bootRegionSize: UInt64
    public var dataRAMStart: UInt64
    public var dataRAMSize: UInt64
    public var sharedMask: UInt64
    public var stackTop: UInt64
    public var transport: ConversionTransport
    public var dataInitiallyShared: Bool
    public var commandLine: String

    public static let stride = Int(MG_BOOT_INFO_STRIDE)
    public static let maxCommandLineBytes = Int(MG_CMDLINE_SIZE) - 1

    /// - Parameter aliased: false for the attributes backend, where a page has one address
    ///   and the guest must see `shared_mask == 0`.
    public init(
        layout: BootLayout, vcpu: Int, transport: ConversionTransport, dataInitiallyShared: Bool,
        commandLine: String, aliased: Bool = true
    ) {
        vcpuIndex = UInt32(vcpu)
        vcpuCount = UInt32(layout.vcpuCount)
        ramSize = layout.ramSize
        bootRegionSize = layout.bootRegionSize
        dataRAMStart = layout.dataRAM.lowerBound
        dataRAMSize = UInt64(layout.dataRAM.count)
        sharedMask = aliased ? layout.sharedMask : 0
        stackTop = layout.stackTop(vcpu: vcpu)
        self.transport = transport
        self.dataInitiallyShared = dataInitiallyShared
        self.commandLine = commandLine
    }

    /// Checks a command line fits the boot info.
    public static func validate(commandLine: String) throws(BootError) {
        let count = commandLine.utf8.count
        guard count <= maxCommandLineBytes else { throw .commandLineTooLong(bytes: count, max: maxCommandLineBytes) }
    }

    /// `stride` bytes ready to copy to `BootLayout.bootInfoAddress(vcpu:)`.
    public func encoded() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.stride)
        func put<T: FixedWidthInteger>(_ value: T, _ field: PartialKeyPath<mg_boot_info>) {
            let offset = MemoryLayout<mg_boot_info>.offset(of: field)!
            for (index, byte) in value.littleEndianBytes.enumerated() { out[offset + index] = byte }
        }
        put(UInt32(MG_BOOT_INFO_MAGIC), \mg_boot_info.magic)
        put(UInt32(MG_ABI_VERSION), \mg_boot_info.abi_version)
        put(vcpuIndex, \mg_boot_info.vcpu_index)
        put(vcpuCount, \mg_boot_info.vcpu_count)
        put(ramSize, \mg_boot_info.ram_size)
        put(UInt64(0), \mg_boot_info.boot_region_start)
        put(bootRegionSize, \mg_boot_info.boot_region_size)
        put(dataRAMStart, \mg_boot_info.data_ram_start)
        put(dataRAMSize, \mg_boot_info.data_ram_size)
        put(sharedMask, \mg_boot_info.shared_mask)
        put(stackTop, \mg_boot_info.stack_top)
        put(transport.rawValue, \mg_boot_info.conversion_transport)
        put(UInt32(dataInitiallyShared ? MG_STATE_SHARED : MG_STATE_PRIVATE), \mg_boot_info.data_initial_state)
        let cmdline = MemoryLayout<mg_boot_info>.offset(of: \mg_boot_info.cmdline)!
        for (index, byte) in commandLine.utf8.prefix(Self.maxCommandLineBytes).enumerated() {
            out[cmdline + index] = byte
        }
        return out
    }
}
