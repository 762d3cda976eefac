extension Dictionary where Value == Int {
    /// One fewer under `key`; a count that reaches 0 leaves the table, so it holds only what is open.
    public mutating func decrementCount(_ key: Key) {
        let left = self[key, default: 1] - 1
        self[key] = left > 0 ? left : nil
    }
}
