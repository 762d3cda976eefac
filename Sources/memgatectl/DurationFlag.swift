import ArgumentParser

/// Every duration flag takes the same forms: seconds as a number (`5`, `0.5`), or with a unit
/// (`500ms`, `5s`, `2m`, `1h`). Pure.
enum DurationFlag {
    struct Invalid: Error, CustomStringConvertible {
        let text: String
        var description: String { "takes seconds: 5, 0.5, or with a unit: 500ms, 5s, 2m, 1h; not \(text)" }
    }

    /// Seconds `text` names.
    static func seconds(_ text: String) throws -> Double {
        let units: [(suffix: String, scale: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(text)
        var scale = 1.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.scale
            break
        }
        // Digits and one point only: no signs, exponents, hex, inf or nan.
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            number.filter({ $0 == "." }).count <= 1,
            let value = Double(number), value.isFinite
        else { throw Invalid(text: text) }
        return value * scale
    }
}
