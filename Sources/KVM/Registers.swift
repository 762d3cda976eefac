import CKVM

/// General-purpose registers (`struct kvm_regs`).
public struct Registers: Sendable, Equatable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0
    /// Bit 1 is reserved and must be set.
    public var rflags: UInt64 = 2

    public init() {}

    init(_ r: kvm_regs) {
        rax = r.rax
        rbx = r.rbx
        rcx = r.rcx
        rdx = r.rdx
        rsi = r.rsi
        rdi = r.rdi
        rsp = r.rsp
        rbp = r.rbp
        r8 = r.r8
        r9 = r.r9
        r10 = r.r10
        r11 = r.r11
        r12 = r.r12
        r13 = r.r13
        r14 = r.r14
        r15 = r.r15
        rip = r.rip
        rflags = r.rflags
    }

    var kvm: kvm_regs {
        kvm_regs(
            rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
            r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15,
            rip: rip, rflags: rflags)
    }
}

/// A segment register as KVM describes it (`struct kvm_segment`).
public struct Segment: Sendable, Equatable {
    public var base: UInt64
    public var limit: UInt32
    public var selector: UInt16
    public var type: UInt8
    public var present: Bool
    public var dpl: UInt8
    public var defaultSize32: Bool
    public var system: Bool  // the descriptor's S bit: 1 = code/data
    public var long: Bool
    public var granularity4K: Bool

    public init(
        base: UInt64, limit: UInt32, selector: UInt16, type: UInt8, present: Bool, dpl: UInt8,
        defaultSize32: Bool, system: Bool, long: Bool, granularity4K: Bool
    ) {
        self.base = base
        self.limit = limit
        self.selector = selector
        self.type = type
        self.present = present
        self.dpl = dpl
        self.defaultSize32 = defaultSize32
        self.system = system
        self.long = long
        self.granularity4K = granularity4K
    }

    init(_ s: kvm_segment) {
        self.init(
            base: s.base, limit: s.limit, selector: s.selector, type: s.type, present: s.present != 0,
            dpl: s.dpl, defaultSize32: s.db != 0, system: s.s != 0, long: s.l != 0, granularity4K: s.g != 0)
    }

    var kvm: kvm_segment {
        var s = kvm_segment()
        s.base = base
        s.limit = limit
        s.selector = selector
        s.type = type
        s.present = present ? 1 : 0
        s.dpl = dpl
        s.db = defaultSize32 ? 1 : 0
        s.s = system ? 1 : 0
        s.l = long ? 1 : 0
        s.g = granularity4K ? 1 : 0
        s.unusable = present ? 0 : 1
        return s
    }
}

/// Special registers (`struct kvm_sregs`): read, modify, write back.
public struct SpecialRegisters: Sendable {
    var raw: kvm_sregs

    init(_ raw: kvm_sregs) { self.raw = raw }

    public var cs: Segment {
        get { Segment(raw.cs) }
        set { raw.cs = newValue.kvm }
    }
    public var ds: Segment {
        get { Segment(raw.ds) }
        set { raw.ds = newValue.kvm }
    }
    public var es: Segment {
        get { Segment(raw.es) }
        set { raw.es = newValue.kvm }
    }
    public var fs: Segment {
        get { Segment(raw.fs) }
        set { raw.fs = newValue.kvm }
    }
    public var gs: Segment {
        get { Segment(raw.gs) }
        set { raw.gs = newValue.kvm }
    }
    public var ss: Segment {
        get { Segment(raw.ss) }
        set { raw.ss = newValue.kvm }
    }
    public var tr: Segment {
        get { Segment(raw.tr) }
        set { raw.tr = newValue.kvm }
    }
    public var gdtBase: UInt64 {
        get { raw.gdt.base }
        set { raw.gdt.base = newValue }
    }
    public var gdtLimit: UInt16 {
        get { raw.gdt.limit }
        set { raw.gdt.limit = newValue }
    }
    public var idtBase: UInt64 {
        get { raw.idt.base }
        set { raw.idt.base = newValue }
    }
    public var idtLimit: UInt16 {
        get { raw.idt.limit }
        set { raw.idt.limit = newValue }
    }
    public var cr0: UInt64 {
        get { raw.cr0 }
        set { raw.cr0 = newValue }
    }
    public var cr2: UInt64 { raw.cr2 }
    public var cr3: UInt64 {
        get { raw.cr3 }
        set { raw.cr3 = newValue }
    }
    public var cr4: UInt64 {
        get { raw.cr4 }
        set { raw.cr4 = newValue }
    }
    public var efer: UInt64 {
        get { raw.efer }
        set { raw.efer = newValue }
    }
}
