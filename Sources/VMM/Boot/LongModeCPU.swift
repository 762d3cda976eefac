import CGuestABI
import KVM

/// Register state that enters a guest directly in 64-bit mode.
enum LongModeCPU {
    static let cr0: UInt64 = 0x8005_0033  // PG WP NE ET MP PE
    static let cr4: UInt64 = 0x620  // OSXMMEXCPT OSFXSR PAE
    static let efer: UInt64 = 0x500  // LMA LME

    static func codeSegment() -> Segment {
        Segment(
            base: 0, limit: 0xFFFF_FFFF, selector: UInt16(MG_SELECTOR_CODE), type: 11, present: true, dpl: 0,
            defaultSize32: false, system: true, long: true, granularity4K: true)
    }

    static func dataSegment() -> Segment {
        Segment(
            base: 0, limit: 0xFFFF_FFFF, selector: UInt16(MG_SELECTOR_DATA), type: 3, present: true, dpl: 0,
            defaultSize32: true, system: true, long: false, granularity4K: true)
    }

    static func taskSegment() -> Segment {
        // Type 11 = busy 64-bit TSS: VM entry requires a usable TR.
        Segment(
            base: BootLayout.tssAddress, limit: UInt32(GDT.tssLimit), selector: UInt16(MG_SELECTOR_TSS), type: 11,
            present: true, dpl: 0, defaultSize32: false, system: false, long: false, granularity4K: false)
    }

    /// Puts `vcpu` at `entry` in 64-bit mode with RSP = its stack and RDI = its boot info.
    static func configure(_ vcpu: VCPU, entry: UInt64, stackTop: UInt64, bootInfo: UInt64) throws(KVMError) {
        var sregs = try vcpu.specialRegisters()
        sregs.cs = codeSegment()
        let data = dataSegment()
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        sregs.tr = taskSegment()
        sregs.gdtBase = BootLayout.gdtAddress
        sregs.gdtLimit = GDT.limit
        sregs.cr0 = cr0
        sregs.cr3 = BootLayout.pageTablesAddress
        sregs.cr4 = cr4
        sregs.efer = efer
        try vcpu.setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = entry
        regs.rsp = stackTop
        regs.rdi = bootInfo
        try vcpu.setRegisters(regs)
    }
}
