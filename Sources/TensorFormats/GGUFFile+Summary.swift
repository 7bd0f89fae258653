// A GGUF file described as JSON for `moeq inspect` (headers only; tensor data is not read).
import Foundation
import QuantKernels

extension GGUFValue {
    /// JSON form: scalars as themselves, arrays as {type, length, first values}.
    public func summaryJSON(maxElements: Int = 8) -> JSONValue {
        switch self {
        case .uint8(let v): .integer(Int64(v))
        case .int8(let v): .integer(Int64(v))
        case .uint16(let v): .integer(Int64(v))
        case .int16(let v): .integer(Int64(v))
        case .uint32(let v): .integer(Int64(v))
        case .int32(let v): .integer(Int64(v))
        case .uint64(let v): Int64(exactly: v).map { .integer($0) } ?? .double(Double(v))
        case .int64(let v): .integer(v)
        case .float32(let v): .double(Double(v))
        case .float64(let v): .double(v)
        case .bool(let v): .bool(v)
        case .string(let s): .string(s.count > 200 ? String(s.prefix(200)) + "…" : s)
        case .array(let type, let elements):
            [
                "array_of": .string("\(type)"), "length": .integer(Int64(elements.count)),
                "first": .array(elements.prefix(maxElements).map { $0.summaryJSON(maxElements: 0) }),
            ]
        }
    }
}

extension GGUFFile {
    /// Tensor bytes by type.
    public var bytesByType: [QuantType: Int] {
        var totals: [QuantType: Int] = [:]
        for tensor in tensors { totals[tensor.type, default: 0] += tensor.byteCount }
        return totals
    }

    /// The `inspect --json` document; the tensor table only for names matching `glob`.
    public func summaryJSON(tensorGlob: String?) -> JSONValue {
        var root = JSONObject()
        root["path"] = .string(path)
        root["format"] = .string("gguf v\(version)")
        root["file_bytes"] = .integer(Int64(mapping.size))
        root["alignment"] = .integer(Int64(alignment))
        root["tensor_count"] = .integer(Int64(tensors.count))
        root["parameters"] = .integer(Int64(tensors.reduce(0) { $0 + $1.elementCount }))
        root["metadata"] = .object(JSONObject(metadata.map { ($0.key, $0.value.summaryJSON()) }))
        var types = JSONObject()
        for type in QuantType.allCases { if let bytes = bytesByType[type] { types[type.rawValue] = .integer(Int64(bytes)) } }
        root["bytes_by_type"] = .object(types)
        if let tensorGlob {
            root["tensor_table"] = .array(
                tensors.filter { fnmatch(tensorGlob, $0.name, 0) == 0 }.map { tensor in
                    [
                        "name": .string(tensor.name), "type": .string(tensor.type.rawValue),
                        "ne": .array(tensor.dimensions.map { .integer(Int64($0)) }),
                        "offset": .integer(Int64(dataStart + tensor.offset)), "bytes": .integer(Int64(tensor.byteCount)),
                    ]
                })
        }
        return .object(root)
    }

    /// Dequantizes a tensor to f32 (numpy order: reversed ne).
    /// The tensor's values as f32; the mapped pages it was read from are released afterwards (the values are a copy),
    /// so a pass over a model larger than memory keeps one tensor's pages resident, not the model's.
    public func dequantized(_ tensor: GGUFTensorInfo) throws(QuantError) -> [Float] {
        let bytes = Array(data(of: tensor))
        mapping.releasePages(in: byteRange(of: tensor))
        return try QuantCodec.dequantize(tensor.type, bytes, count: tensor.elementCount)
    }

    /// Dequantizes matrix `index` of a tensor that stacks `count` equal matrices along its last ggml dimension
    /// (llama.cpp's 3-D expert tensors): only that matrix's bytes are read.
    public func dequantized(_ tensor: GGUFTensorInfo, matrix index: Int, of count: Int) throws(QuantError) -> [Float] {
        let bytes = tensor.byteCount / count, range = byteRange(of: tensor)
        let slice = (range.lowerBound + index * bytes)..<(range.lowerBound + (index + 1) * bytes)
        let copy = Array(mapping.bytes(in: slice))
        mapping.releasePages(in: slice)
        return try QuantCodec.dequantize(tensor.type, copy, count: tensor.elementCount / count)
    }
}
