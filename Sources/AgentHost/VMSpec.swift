import MemoryModel
import VMM

/// What to create a VM from: the request of `POST /v1/vms` or of `memgate-agent run`.
public struct VMSpec: Sendable {
    public var name: String
    /// How the image is named to people (a path under --images-dir, or the CLI path).
    public var imageName: String
    /// The ELF file's bytes.
    public var image: [UInt8]
    public var memoryMib: UInt64 = 256
    public var vcpus: Int = 1
    public var commandLine = ""
    public var labels: [String: String] = [:]
    public var backend: BackendKind?
    public var initialState: PageState = .private
    /// Runs of page state data RAM may be split into (VMConfiguration.maxRuns).
    public var maxRuns: Int?
    /// nil: the agent's choice (its --alias-mechanism, else the host probe's).
    public var aliasMechanism: AliasMechanism?
    /// Stop the VM this long after it starts.
    public var timeout: Duration?
    /// Console output as it happens (the CLI streams it to stdout).
    /// Returns false when it can take no more (the stream stops; the VM runs on).
    public var consoleStream: (@Sendable ([UInt8]) -> Bool)?

    public init(name: String, imageName: String, image: [UInt8]) {
        self.name = name
        self.imageName = imageName
        self.image = image
    }

    /// Largest guest RAM and vCPU count a spec may ask for (the boot area's limits).
    public static let maxMemoryMib: UInt64 = 64 << 10
    public static let maxVCPUs = 64
    /// Largest page-state run limit a spec may ask for (host mappings are a process-wide budget).
    public static let maxRunLimit = ProtectAliasBackend.defaultRunLimit

    /// Smallest guest RAM: the 2 MiB boot region plus at least 2 MiB of data RAM (KVM refuses an empty memslot).
    public static let minMemoryMib: UInt64 = 4

    /// Checks every field a client controls; the error names the field.
    public func validate() throws(AgentHostError) {
        guard !name.isEmpty, name.utf8.count <= 128, Self.isPrintable(name) else {
            throw .invalid(
                field: "name",
                message: "must be 1 to 128 printable characters (no control, bidi-override or non-characters)")
        }
        guard memoryMib >= Self.minMemoryMib, memoryMib <= Self.maxMemoryMib, memoryMib % 2 == 0 else {
            throw .invalid(
                field: "memory_mib", message: "must be an even number from \(Self.minMemoryMib) to \(Self.maxMemoryMib)"
            )
        }
        guard vcpus >= 1, vcpus <= Self.maxVCPUs else {
            throw .invalid(field: "vcpus", message: "must be from 1 to \(Self.maxVCPUs)")
        }
        guard labels.count <= 64, labels.allSatisfy({ $0.key.utf8.count <= 128 && $0.value.utf8.count <= 1024 }) else {
            throw .invalid(field: "labels", message: "at most 64 labels, keys up to 128 and values up to 1024 bytes")
        }
        // Labels are shown wherever names are (tables, pictures, the status page): the same characters only.
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            guard !key.isEmpty, Self.isPrintable(key) else {
                throw .invalid(field: "labels", message: "keys must be 1 to 128 printable characters")
            }
            guard Self.isPrintable(value) else {
                throw .invalid(
                    field: "labels.\(key)",
                    message: "must be printable characters (no control, bidi-override or non-characters)")
            }
        }
        if let maxRuns, !(1...Self.maxRunLimit).contains(maxRuns) {
            throw .invalid(field: "max_runs", message: "must be from 1 to \(Self.maxRunLimit)")
        }
    }
}

extension VMSpec {
    /// Text safe to show an operator anywhere: no C0 or C1 control, DEL, line or paragraph
    /// separator, bidirectional override, or Unicode non-character (which XML forbids). Pure.
    public static func isPrintable(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            let value = scalar.value
            switch value {
            case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069, 0xFDD0...0xFDEF: return false
            default: return value & 0xFFFE != 0xFFFE
            }
        }
    }
}
