import Controller

/// A small seeded generator: a failing property or a chosen kill point replays exactly.
/// (The controller's, which draws canaries from `--seed`.)
public typealias SplitMix64 = SeededGenerator
