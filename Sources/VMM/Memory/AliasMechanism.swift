/// How the alias backend moves a page between its private address and its shared alias.
public enum AliasMechanism: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Data RAM stays mapped at both addresses (two memslots, never touched
    /// again); a conversion changes the host protections of the page's two views
    /// (`mprotect`), and KVM's MMU notifier drops the closed one at once.
    case protect
    /// One memslot per run of equal state at the address matching it; a
    /// conversion deletes and re-creates the slots around the page, with the
    /// other vCPUs held outside KVM_RUN meanwhile.
    case memslot

    public var description: String { rawValue }
}
