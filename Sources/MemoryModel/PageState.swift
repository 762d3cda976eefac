/// Whether a page of data RAM is private to the guest or shared with the host.
public enum PageState: String, Sendable, Codable, CaseIterable {
    case `private`
    case shared

    public var opposite: PageState { self == .private ? .shared : .private }
}

/// Which way a conversion goes.
public enum ConversionDirection: String, Sendable, Codable, CaseIterable {
    case toPrivate = "to_private"
    case toShared = "to_shared"

    public var target: PageState { self == .toPrivate ? .private : .shared }

    public init(to state: PageState) { self = state == .private ? .toPrivate : .toShared }
}

/// What caused a conversion.
public enum ConversionTrigger: String, Sendable, Codable, CaseIterable {
    /// The guest asked (KVM_HC_MAP_GPA_RANGE, by VMCALL or the paravirtual port).
    case explicit
    /// The guest touched a page through the wrong alias (a memory fault).
    case implicit
}
