import ArgumentParser
import MemoryModel

// The filters' vocabularies are the model's own enums: their values, their help and their completions derive from them.
extension ConversionDirection: ExpressibleByArgument {}
extension ConversionTrigger: ExpressibleByArgument {}
extension ConversionDecision: ExpressibleByArgument {}
