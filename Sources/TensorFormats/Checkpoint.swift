// A checkpoint's tensors across one or many safetensors files, resolved through `model.safetensors.index.json`.
import Foundation

/// Where a tensor lives: its header entry and the file holding it.
public struct TensorLocation: Sendable {
    public let info: TensorInfo
    public let file: SafetensorsFile

    public var name: String { info.name }
    public var data: UnsafeRawBufferPointer { file.data(of: info) }
}

/// All tensors of a checkpoint: a single `.safetensors` file, a directory with `model.safetensors`,
/// or a sharded directory with `model.safetensors.index.json`. Headers only are read on open.
public final class Checkpoint: Sendable {
    /// The directory holding config.json and the shards (the file's directory for a single file).
    public let directory: String
    public let files: [SafetensorsFile]
    /// Tensors in a deterministic order: shard order, then data order within a shard.
    public let tensors: [TensorLocation]
    /// The index file, when the checkpoint is sharded.
    public let indexPath: String?
    private let byName: [String: Int]

    public static let indexFileName = "model.safetensors.index.json"

    /// Opens a file or directory path.
    public init(path: String) throws(SafetensorsError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .io(FileIOError(file: path, operation: "open", code: ENOENT))
        }
        var shardPaths: [String]
        var weightMap: [(String, String)]? = nil
        if !isDirectory.boolValue {
            directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
            if path.hasSuffix(".json") {
                indexPath = path
                (shardPaths, weightMap) = try Checkpoint.readIndex(path, directory: directory)
            } else {
                indexPath = nil
                shardPaths = [path]
            }
        } else {
            directory = path
            let index = (path as NSString).appendingPathComponent(Checkpoint.indexFileName)
            if FileManager.default.fileExists(atPath: index) {
                indexPath = index
                (shardPaths, weightMap) = try Checkpoint.readIndex(index, directory: path)
            } else {
                indexPath = nil
                let single = (path as NSString).appendingPathComponent("model.safetensors")
                if FileManager.default.fileExists(atPath: single) {
                    shardPaths = [single]
                } else {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                    shardPaths = names.filter { $0.hasSuffix(".safetensors") }.sorted().map {
                        (path as NSString).appendingPathComponent($0)
                    }
                    guard !shardPaths.isEmpty else {
                        throw .io(
                            FileIOError(
                                file: path, operation: "open", code: 0,
                                detail: "no model.safetensors, index or *.safetensors file in this directory"))
                    }
                }
            }
        }
        var files: [SafetensorsFile] = []
        for shard in shardPaths { files.append(try SafetensorsFile(path: shard)) }
        self.files = files

        var tensors: [TensorLocation] = []
        var byName: [String: Int] = [:]
        for file in files {
            for info in file.tensors {
                if byName[info.name] != nil {
                    throw .duplicateTensor(file: file.path, tensor: info.name, byteOffset: file.fileOffset(of: info))
                }
                byName[info.name] = tensors.count
                tensors.append(TensorLocation(info: info, file: file))
            }
        }
        if let weightMap, let indexPath {
            try Checkpoint.checkWeightMap(weightMap, directory: directory, byName: byName, tensors: tensors, indexPath: indexPath)
        }
        self.tensors = tensors
        self.byName = byName
    }

    public func location(of name: String) -> TensorLocation? { byName[name].map { tensors[$0] } }

    public func contains(_ name: String) -> Bool { byName[name] != nil }

    /// Sum of all shard file sizes.
    public var totalFileBytes: Int { files.reduce(0) { $0 + $1.mapping.size } }

    // MARK: - Index

    /// Reads the index: the distinct shard files in first-mention order, and the weight map pairs.
    static func readIndex(_ indexPath: String, directory: String) throws(SafetensorsError) -> ([String], [(String, String)]) {
        let mapped: MappedFile
        do throws(FileIOError) { mapped = try MappedFile(path: indexPath) } catch { throw .io(error) }
        let root: JSONValue
        do throws(JSONError) { root = try JSONParser.parse(mapped.bytes) } catch {
            throw .invalidIndex(file: indexPath, byteOffset: error.offset, reason: "not valid JSON: \(error.reason)")
        }
        guard let map = root["weight_map"]?.objectValue else {
            throw .invalidIndex(file: indexPath, byteOffset: 0, reason: "no \"weight_map\" object")
        }
        guard !map.isEmpty else { throw .invalidIndex(file: indexPath, byteOffset: 0, reason: "\"weight_map\" lists no tensors") }
        var shards: [String] = []
        var seen: Set<String> = []
        var pairs: [(String, String)] = []
        for (tensor, value) in map.pairs {
            guard let shard = value.stringValue, !shard.isEmpty, !shard.utf8.contains(UInt8(ascii: "/")), shard != "..", shard != "." else {
                throw .invalidIndex(
                    file: indexPath, byteOffset: SafetensorsHeader.offsetOfKey(tensor, in: mapped.bytes),
                    reason: "weight_map entry \"\(tensor)\" must name a shard file in the same directory")
            }
            pairs.append((tensor, shard))
            if seen.insert(shard).inserted { shards.append(shard) }
        }
        return (shards.map { (directory as NSString).appendingPathComponent($0) }, pairs)
    }

    /// Every weight_map entry must be in the shard it names, and every shard tensor must be listed.
    static func checkWeightMap(
        _ weightMap: [(String, String)], directory: String, byName: [String: Int],
        tensors: [TensorLocation], indexPath: String
    ) throws(SafetensorsError) {
        var shardPaths: [String: String] = [:]
        var listed: Set<String> = []
        listed.reserveCapacity(weightMap.count)
        for (tensor, shard) in weightMap {
            listed.insert(tensor)
            let path: String
            if let known = shardPaths[shard] {
                path = known
            } else {
                path = (directory as NSString).appendingPathComponent(shard)
                shardPaths[shard] = path
            }
            guard let i = byName[tensor], tensors[i].file.path == path else {
                throw .tensorMissingFromShard(file: indexPath, tensor: tensor, shard: shard)
            }
        }
        if listed.count != tensors.count {
            for location in tensors where !listed.contains(location.name) {
                throw .tensorNotIndexed(file: indexPath, tensor: location.name, shard: (location.file.path as NSString).lastPathComponent)
            }
        }
    }
}
