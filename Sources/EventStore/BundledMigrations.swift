import Foundation
import SQLite

extension Migrator {
    /// The event store's migrations, built into the binary (a copy of the repository's Migrations/ folder).
    public static func bundled() throws(EventStoreError) -> [Migration] {
        guard let url = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw .migrations("the Migrations resource is missing from the build")
        }
        do throws(MigrationError) {
            return try load(directory: url)
        } catch {
            throw EventStoreError(error)
        }
    }
}
