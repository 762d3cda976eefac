import CKVM

/// A set of CPUID leaves as KVM reports and accepts them.
public struct CPUIDTable: Sendable {
    public private(set) var entries: [kvm_cpuid_entry2]

    static func supported(kvm: Int32) throws(KVMError) -> CPUIDTable {
        var capacity: UInt32 = 128
        while true {
            let size = Int(ckvm_cpuid2_size(capacity))
            let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            defer { raw.deallocate() }
            // Safety: the buffer holds the header plus `capacity` entries, as nent tells KVM.
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            let header = raw.bindMemory(to: kvm_cpuid2.self, capacity: 1)
            header.pointee.nent = capacity
            if ckvm_get_supported_cpuid(kvm, header) == 0 {
                let count = Int(header.pointee.nent)
                let first = (raw + MemoryLayout<kvm_cpuid2>.size).bindMemory(to: kvm_cpuid_entry2.self, capacity: count)
                return CPUIDTable(entries: Array(UnsafeBufferPointer(start: first, count: count)))
            }
            let error = KVMError.last("KVM_GET_SUPPORTED_CPUID")
            guard error.errno == E2BIG, capacity < 4096 else { throw error }
            capacity *= 2
        }
    }

    /// Runs `body` with a kvm_cpuid2 holding these entries.
    func withKVMCPUID2<R>(_ body: (UnsafePointer<kvm_cpuid2>) -> R) -> R {
        let size = Int(ckvm_cpuid2_size(UInt32(entries.count)))
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        // Safety: the buffer is sized for the header plus every entry copied into it.
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let header = raw.bindMemory(to: kvm_cpuid2.self, capacity: 1)
        header.pointee.nent = UInt32(entries.count)
        let first = (raw + MemoryLayout<kvm_cpuid2>.size).bindMemory(to: kvm_cpuid_entry2.self, capacity: entries.count)
        entries.withUnsafeBufferPointer { first.update(from: $0.baseAddress!, count: entries.count) }
        return body(header)
    }

    /// The guest's physical address width from leaf 0x80000008, if present.
    public var physicalAddressBits: Int? {
        entries.first { $0.function == 0x8000_0008 }.map { Int($0.eax & 0xFF) }
    }
}
