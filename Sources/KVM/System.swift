import CKVM
import Glibc

/// The host's KVM (/dev/kvm): version check, capabilities, VM creation.
public final class System: Sendable {
    public static let expectedAPIVersion: Int32 = 12
    public let fd: FileDescriptor
    public let vcpuMmapSize: Int

    public init(path: String = "/dev/kvm") throws(KVMError) {
        let raw = open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else {
            throw KVMError.last("open(\(path))", hint: "MemGate needs KVM: load kvm_intel/kvm_amd and run as a user who can open \(path)")
        }
        fd = FileDescriptor(owning: raw)
        let version = ckvm_get_api_version(raw)
        guard version == Self.expectedAPIVersion else {
            throw KVMError("KVM_GET_API_VERSION", errno: EINVAL, hint: "KVM API version is \(version), MemGate needs \(Self.expectedAPIVersion)")
        }
        let size = ckvm_get_vcpu_mmap_size(raw)
        guard size > 0 else { throw KVMError.last("KVM_GET_VCPU_MMAP_SIZE") }
        vcpuMmapSize = Int(size)
    }

    /// True when /dev/kvm exists and can be opened by this process.
    public static var isAvailable: Bool { access("/dev/kvm", R_OK | W_OK) == 0 }

    /// `KVM_CHECK_EXTENSION` on /dev/kvm; 0 means unsupported.
    public func check(_ capability: Capability) -> Int32 {
        max(0, ckvm_check_extension(fd.rawValue, Int(capability.rawValue)))
    }

    public func createVM(type: VMType = .default) throws(KVMError) -> VM {
        let raw = ckvm_create_vm(fd.rawValue, UInt(type.rawValue))
        guard raw >= 0 else {
            throw KVMError.last("KVM_CREATE_VM(type \(type))", hint: type == .default ? nil : "this host's KVM_CAP_VM_TYPES may not include \(type)")
        }
        return VM(fd: FileDescriptor(owning: raw), type: type, vcpuMmapSize: vcpuMmapSize)
    }

    /// The CPUID leaves KVM can expose (`KVM_GET_SUPPORTED_CPUID`).
    public func supportedCPUID() throws(KVMError) -> CPUIDTable {
        try CPUIDTable.supported(kvm: fd.rawValue)
    }

    /// The running kernel's release string (uname -r).
    public static func kernelRelease() -> String {
        var name = utsname()
        guard uname(&name) == 0 else { return "unknown" }
        // Safety: uname NUL-terminates the release field inside the struct.
        return withUnsafeBytes(of: &name.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }

    /// Asks every capability MemGate uses, including the VM-scoped ones.
    public func capabilityReport() -> CapabilityReport {
        var raw: [String: Int32] = [:]
        for capability in Capability.allCases { raw[capability.description] = check(capability) }
        var types = VMType.decode(mask: check(.vmTypes))
        if types.isEmpty { types = [.default] }  // kernels without VM_TYPES still create type 0
        var attributes: [String: UInt64] = [:]
        for type in types {
            // Only types we can actually create are asked; SEV/TDX need firmware set-up first.
            guard let vm = try? createVM(type: type) else { continue }
            attributes[type.description] = UInt64(max(0, vm.check(.memoryAttributes)))
        }
        let recommended = Int(check(.nrVCPUs))
        return CapabilityReport(
            apiVersion: Self.expectedAPIVersion,
            system: raw,
            vmTypes: types,
            memoryAttributesByVMType: attributes,
            guestMemfd: check(.guestMemfd) > 0,
            guestMemfdFlags: UInt64(check(.guestMemfdFlags)),
            exitHypercallMask: UInt64(UInt32(bitPattern: check(.exitHypercall))),
            memoryFaultInfo: check(.memoryFaultInfo) > 0,
            syncRegsMask: UInt32(bitPattern: check(.syncRegs)),
            userMemory2: check(.userMemory2) > 0,
            vcpusRecommended: recommended > 0 ? recommended : 4,
            vcpusMax: Int(check(.maxVCPUs)),
            maxMemslots: Int(check(.nrMemslots)))
    }
}
