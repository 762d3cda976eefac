/// This build of MemGate: what `--version`, `GET /v1/host` and `memgate_build_info` say.
public enum BuildInfo {
    public static let version = "0.4.0"
}
