import SparrowEngine

/// A catalog model from the local store; scripts/test.sh pulls them before the tests run.
public func catalogModel(_ name: String) throws -> LanguageModel {
    let store = ModelStore()
    guard let entry = ModelCatalog.model(named: name), store.isPresent(entry) else {
        throw ModelError("\(name) is not in \(store.directory.path): run `sparrow models pull \(name)` (scripts/test.sh does)")
    }
    return try LanguageModel(path: store.path(for: name))
}
