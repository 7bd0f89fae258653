// Groups a checkpoint's stored tensors into logical weights: FP8 weights with their block scales, packed
// integers with scales and zero points, everything else as plain tensors. Headers only.

/// Resolves stored tensors into `SourceWeight`s, checking that companions have the shapes their weight implies.
public struct WeightResolver: Sendable {
    public let checkpoint: Checkpoint
    public let quantization: SourceQuantization

    public init(checkpoint: Checkpoint, quantization: SourceQuantization) {
        self.checkpoint = checkpoint
        self.quantization = quantization
    }

    /// Every logical weight, in checkpoint order. Companion tensors are folded into their weight.
    public func allWeights() throws(FormatError) -> [SourceWeight] {
        var weights: [SourceWeight] = []
        for location in checkpoint.tensors {
            let name = location.name
            if let logical = CompanionSuffix.fp8ScaleInverse.logicalName(of: name), isFP8Weight(logical) { continue }
            if case .mxfp4 = quantization {
                if let logical = CompanionSuffix.mxfp4Scales.logicalName(of: name),
                    checkpoint.contains(CompanionSuffix.mxfp4Blocks.name(of: logical))
                {
                    continue
                }
                if let logical = CompanionSuffix.mxfp4Blocks.logicalName(of: name) {
                    weights.append(try mxfp4Weight(logical: logical))
                    continue
                }
            }
            if let logical = WeightResolver.packedWeightName(of: name) {
                guard CompanionSuffix.packed.logicalName(of: name) != nil else {
                    if checkpoint.contains(CompanionSuffix.packed.name(of: logical)) { continue }
                    weights.append(SourceWeight(name: name, shape: location.info.shape, encoding: .plain(location)))
                    continue
                }
                weights.append(try packedWeight(logical: logical))
                continue
            }
            weights.append(try weight(for: location))
        }
        return weights
    }

    /// The logical weight called `name` (`M.weight` also finds packed `M.weight_packed`).
    public func weight(named name: String) throws(FormatError) -> SourceWeight {
        if let location = checkpoint.location(of: name) { return try weight(for: location) }
        if checkpoint.contains(CompanionSuffix.packed.name(of: name)) { return try packedWeight(logical: name) }
        if case .mxfp4 = quantization, checkpoint.contains(CompanionSuffix.mxfp4Blocks.name(of: name)) {
            return try mxfp4Weight(logical: name)
        }
        throw .container(.tensorNotFound(file: checkpoint.directory, tensor: name))
    }

    /// True when the checkpoint holds the logical weight `name` (plain, FP8 or packed).
    public func hasWeight(named name: String) -> Bool {
        checkpoint.contains(name) || checkpoint.contains(CompanionSuffix.packed.name(of: name))
            || (quantization == .mxfp4 && checkpoint.contains(CompanionSuffix.mxfp4Blocks.name(of: name)))
    }

    // MARK: - MXFP4

    /// The logical weight `M` [..., rows, columns] of gpt-oss's `M_blocks` [..., rows, columns/32, 16] (u8) and
    /// `M_scales` [..., rows, columns/32] (u8 E8M0).
    private func mxfp4Weight(logical: String) throws(FormatError) -> SourceWeight {
        let blocksName = CompanionSuffix.mxfp4Blocks.name(of: logical), scalesName = CompanionSuffix.mxfp4Scales.name(of: logical)
        guard let blocks = checkpoint.location(of: blocksName) else {
            throw .container(.tensorNotFound(file: checkpoint.directory, tensor: blocksName))
        }
        let at = blocks.file.fileOffset(of: blocks.info)
        guard let scales = checkpoint.location(of: scalesName) else {
            throw .missingCompanion(file: blocks.file.path, tensor: blocksName, companion: scalesName)
        }
        let shape = blocks.info.shape
        guard blocks.info.dtype == .u8, shape.count >= 3, shape.last == 16 else {
            throw .unsupportedDType(
                file: blocks.file.path, tensor: blocksName, byteOffset: at, dtype: "\(blocks.info.dtype.rawValue) \(shape)")
        }
        let expected = Array(shape.dropLast())
        guard scales.info.dtype == .u8, scales.info.shape == expected else {
            throw .companionShape(
                file: scales.file.path, tensor: scalesName, byteOffset: scales.file.fileOffset(of: scales.info), expected: expected,
                found: scales.info.shape)
        }
        return SourceWeight(
            name: logical, shape: Array(shape.dropLast(2)) + [shape[shape.count - 2] * 32], encoding: .mxfp4(blocks: blocks, scales: scales)
        )
    }

    // MARK: - Plain and FP8

    private func isFP8Weight(_ name: String) -> Bool { checkpoint.location(of: name)?.info.dtype == .f8e4m3 }

    private func weight(for location: TensorLocation) throws(FormatError) -> SourceWeight {
        let info = location.info
        if info.dtype == .f8e4m3, let scale = checkpoint.location(of: CompanionSuffix.fp8ScaleInverse.name(of: info.name)) {
            guard info.shape.count == 2 else {
                throw .companionShape(
                    file: location.file.path, tensor: info.name, byteOffset: location.file.fileOffset(of: info), expected: [-1, -1],
                    found: info.shape)
            }
            var blockRows = 128, blockColumns = 128
            if case let .fp8Block(r, c) = quantization { blockRows = r; blockColumns = c }
            let expected = [(info.shape[0] + blockRows - 1) / blockRows, (info.shape[1] + blockColumns - 1) / blockColumns]
            guard scale.info.shape == expected else {
                throw .companionShape(
                    file: scale.file.path, tensor: scale.name, byteOffset: scale.file.fileOffset(of: scale.info), expected: expected,
                    found: scale.info.shape)
            }
            return SourceWeight(
                name: info.name, shape: info.shape,
                encoding: .fp8Block(weight: location, scaleInverse: scale, blockRows: blockRows, blockColumns: blockColumns))
        }
        return SourceWeight(name: info.name, shape: info.shape, encoding: .plain(location))
    }

    // MARK: - Packed integers

    /// The logical weight `M.weight` of a compressed-tensors companion `M.weight_packed` (`_scale`, `_zero_point` …).
    public static func packedWeightName(of name: String) -> String? {
        for suffix in CompanionSuffix.compressedTensors { if let logical = suffix.logicalName(of: name) { return logical } }
        return nil
    }

    /// The module `M` of a logical weight `M.weight` (compressed-tensors config groups and ignore lists name modules).
    static func moduleName(of logical: String) -> String {
        logical.hasSuffix(".weight") ? String(logical.dropLast(".weight".count)) : logical
    }

    private func packedWeight(logical: String) throws(FormatError) -> SourceWeight {
        let module = WeightResolver.moduleName(of: logical)
        let packedName = CompanionSuffix.packed.name(of: logical)
        guard let packed = checkpoint.location(of: packedName) else {
            throw .container(.tensorNotFound(file: checkpoint.directory, tensor: packedName))
        }
        let file = packed.file.path
        let at = packed.file.fileOffset(of: packed.info)
        guard let scale = checkpoint.location(of: CompanionSuffix.scale.name(of: logical)) else {
            throw .missingCompanion(file: file, tensor: packedName, companion: CompanionSuffix.scale.name(of: logical))
        }
        guard case .compressedTensors(let config) = quantization else {
            throw .invalidConfig(
                field: "quantization_config", reason: "\(packedName) is packed but the config declares no compressed-tensors quantization")
        }
        guard let group = config.group(for: module) else { throw .notQuantizedByConfig(file: file, tensor: packedName) }
        guard [2, 4, 8].contains(group.bits) else {
            throw .invalidConfig(
                field: "quantization_config.config_groups.\(group.name).weights.num_bits",
                reason: "\(group.bits)-bit packing is not supported (2, 4, 8)")
        }
        guard packed.info.dtype == .i32, packed.info.shape.count == 2 else {
            throw .unsupportedDType(
                file: file, tensor: packedName, byteOffset: at, dtype: "\(packed.info.dtype.rawValue) \(packed.info.shape)")
        }
        let rows = packed.info.shape[0], words = packed.info.shape[1]
        guard scale.info.shape.count == 2, scale.info.shape[0] == rows, scale.info.shape[1] > 0 else {
            throw .companionShape(
                file: scale.file.path, tensor: scale.name, byteOffset: scale.file.fileOffset(of: scale.info), expected: [rows, -1],
                found: scale.info.shape)
        }
        let groups = scale.info.shape[1]
        // Logical columns: the group count fixes them to within one group; the word count to within one word.
        let columns: Int
        let groupSize: Int
        if let size = group.groupSize {
            columns = groups * size
            groupSize = size
        } else {
            columns = words * 32 / group.bits
            groupSize = columns
        }
        guard (columns * group.bits + 31) / 32 == words, group.groupSize != nil || groups == 1 else {
            throw .companionShape(
                file: file, tensor: packedName, byteOffset: at, expected: [rows, (columns * group.bits + 31) / 32], found: packed.info.shape
            )
        }
        var zeroPoint: TensorLocation? = nil
        if !group.symmetric {
            guard let zp = checkpoint.location(of: CompanionSuffix.zeroPoint.name(of: logical)) else {
                throw .missingCompanion(file: file, tensor: packedName, companion: CompanionSuffix.zeroPoint.name(of: logical))
            }
            let expected = [(rows * group.bits + 31) / 32, groups]
            guard zp.info.shape == expected, zp.info.dtype == .i32 else {
                throw .companionShape(
                    file: zp.file.path, tensor: zp.name, byteOffset: zp.file.fileOffset(of: zp.info), expected: expected,
                    found: zp.info.shape)
            }
            zeroPoint = zp
        }
        let metadata = [CompanionSuffix.shape, .groupIndex].compactMap { checkpoint.location(of: $0.name(of: logical)) }
        if let shape = checkpoint.location(of: CompanionSuffix.shape.name(of: logical)) {
            // compressed-tensors records the logical [rows, columns]; it must be what the packed words and scales imply.
            let shapeAt = shape.file.fileOffset(of: shape.info)
            var stored: [Int]? = nil
            if shape.info.dtype == .i64 && shape.info.shape == [2] {
                let bytes: [UInt8]
                do throws(FileIOError) { bytes = try shape.file.mapping.copyBytes(in: shapeAt..<(shapeAt + 16)) } catch { throw .io(error) }
                stored = (0..<2).map { i in
                    Int(Int64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self) }))
                }
            }
            guard stored == [rows, columns] else {
                throw .companionShape(
                    file: shape.file.path, tensor: shape.name, byteOffset: shape.file.fileOffset(of: shape.info),
                    expected: [rows, columns], found: stored ?? shape.info.shape)
            }
        }
        return SourceWeight(
            name: logical, shape: [rows, columns],
            encoding: .packedInteger(packed: packed, scale: scale, zeroPoint: zeroPoint, bits: group.bits, groupSize: groupSize),
            metadataTensors: metadata)
    }
}
