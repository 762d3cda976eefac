import CKVM
import Glibc

/// The host's KVM (/dev/kvm): version check, capabilities, VM creation.
public final class System: Sendable {
    public static let expectedAPIVersion: Int32 = 12
    public let fd: FileDescriptor
    public let vcpuMmapSize: Int
    /// Capabilities this process acts as if KVM lacked (`MEMGATE_KVM_HIDE`).
    public let hidden: HiddenCapabilities

    /// Opens KVM. `hiding` nil reads `MEMGATE_KVM_HIDE`; an unknown name there is EINVAL.
    public init(path: String = "/dev/kvm", hiding: HiddenCapabilities? = nil) throws(KVMError) {
        do throws(HiddenCapabilitiesError) {
            if let hiding { hidden = hiding } else { hidden = try HiddenCapabilities.fromEnvironment() }
        } catch {
            throw KVMError(HiddenCapabilities.environmentVariable, errno: EINVAL, hint: error.description)
        }
        let raw = open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else {
            throw KVMError.last(
                "open(\(path))",
                hint: "MemGate needs KVM: load kvm_intel/kvm_amd and run as a user who can open \(path)")
        }
        fd = FileDescriptor(owning: raw)
        let version = ckvm_get_api_version(raw)
        guard version == Self.expectedAPIVersion else {
            throw KVMError(
                "KVM_GET_API_VERSION", errno: EINVAL,
                hint: "KVM API version is \(version), MemGate needs \(Self.expectedAPIVersion)")
        }
        let size = ckvm_get_vcpu_mmap_size(raw)
        guard size > 0 else { throw KVMError.last("KVM_GET_VCPU_MMAP_SIZE") }
        vcpuMmapSize = Int(size)
    }

    /// True when /dev/kvm exists and can be opened by this process.
    public static var isAvailable: Bool { access("/dev/kvm", R_OK | W_OK) == 0 }

    /// `KVM_CHECK_EXTENSION` on /dev/kvm, hidden capabilities taken away; 0 means unsupported.
    public func check(_ capability: Capability) -> Int32 {
        hidden.answer(capability, host: max(0, ckvm_check_extension(fd.rawValue, Int(capability.rawValue))))
    }

    public func createVM(type: VMType = .default) throws(KVMError) -> VM {
        if type == .swProtected, hidden.hides(.swProtected) {
            throw hidden.refusal("KVM_CREATE_VM(type \(type))", .swProtected)
        }
        let raw = ckvm_create_vm(fd.rawValue, UInt(type.rawValue))
        guard raw >= 0 else {
            throw KVMError.last(
                "KVM_CREATE_VM(type \(type))",
                hint: type == .default ? nil : "this host's KVM_CAP_VM_TYPES may not include \(type)")
        }
        return VM(fd: FileDescriptor(owning: raw), type: type, vcpuMmapSize: vcpuMmapSize, hidden: hidden)
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

    /// Asks every capability MemGate uses, including the VM-scoped ones, as the mask leaves them.
    public func capabilityReport() -> CapabilityReport {
        CapabilityReport.build(hidden: hidden, check: check) { type in
            // Only types we can actually create are asked; SEV/TDX need firmware set-up first.
            guard let vm = try? createVM(type: type) else { return nil }
            return UInt64(max(0, vm.check(.memoryAttributes)))
        }
    }
}
