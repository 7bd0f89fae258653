// One test per safetensors header rule: each violation is a typed error naming file, tensor and byte offset.
import Testing
@testable import TensorFormats

private let entry = #""t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}"#

@Test func acceptsAValidHeaderWithMetadata() throws {
    let header = try parseHeader(
        #"{"__metadata__": {"format": "pt"}, "# + entry + #", "u": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}"#,
        dataBytes: 22)
    #expect(header.tensors.map(\.name) == ["t", "u"])
    #expect(header.metadata == ["format": "pt"])
    #expect(header.tensors[1].shape == [3])
}

@Test func fileSmallerThanTheLengthPrefix() {
    #expect(throws: SafetensorsError.fileTooSmall(file: "test.safetensors", size: 5)) { try parseHeader([1, 2, 3, 4, 5]) }
}

@Test func headerLengthOverTheLimit() {
    var bytes = withUnsafeBytes(of: UInt64(100_000_001).littleEndian) { Array($0) }
    bytes += [UInt8](repeating: 0x20, count: 16)
    #expect(throws: SafetensorsError.headerTooLarge(file: "test.safetensors", length: 100_000_001, limit: 100_000_000)) {
        try parseHeader(bytes)
    }
}

@Test func headerLengthBeyondTheFile() {
    var bytes = withUnsafeBytes(of: UInt64(64).littleEndian) { Array($0) }
    bytes += Array("{}".utf8)
    #expect(throws: SafetensorsError.headerBeyondFile(file: "test.safetensors", length: 64, fileSize: 10)) { try parseHeader(bytes) }
}

@Test func headerLengthIsLittleEndian() throws {
    // A big-endian length would read as an enormous number and be rejected.
    let json = Array("{}".utf8)
    var bytes = withUnsafeBytes(of: UInt64(json.count).bigEndian) { Array($0) }
    bytes += json
    #expect(throws: SafetensorsError.self) { try parseHeader(bytes) }
    #expect(try parseHeader("{}", dataBytes: 0).tensors.isEmpty)
}

@Test func headerNotJSON() {
    #expect(throws: SafetensorsError.headerNotJSON(file: "test.safetensors", byteOffset: 9, reason: "expected a string key")) {
        try parseHeader("{x}", dataBytes: 0)
    }
}

@Test func headerNotAnObject() {
    #expect(throws: SafetensorsError.headerNotObject(file: "test.safetensors")) { try parseHeader("[1, 2]", dataBytes: 0) }
}

@Test func metadataMustMapStringsToStrings() {
    #expect(
        throws: SafetensorsError.invalidMetadata(
            file: "test.safetensors", byteOffset: 9, reason: "value of \"n\" is a number, not a string")
    ) {
        try parseHeader(#"{"__metadata__": {"n": 1}}"#, dataBytes: 0)
    }
}

@Test func unknownDType() {
    #expect(throws: SafetensorsError.unknownDType(file: "test.safetensors", tensor: "t", byteOffset: 9, dtype: "F12")) {
        try parseHeader(#"{"t": {"dtype": "F12", "shape": [1], "data_offsets": [0, 1]}}"#, dataBytes: 1)
    }
}

@Test func negativeDimension() {
    #expect(throws: SafetensorsError.invalidShape(file: "test.safetensors", tensor: "t", byteOffset: 9, reason: "negative dimension -2")) {
        try parseHeader(#"{"t": {"dtype": "F32", "shape": [-2, 2], "data_offsets": [0, 16]}}"#, dataBytes: 16)
    }
}

@Test func shapeProductOverflow() {
    #expect(throws: SafetensorsError.invalidShape(file: "test.safetensors", tensor: "t", byteOffset: 9, reason: "element count overflows"))
    {
        try parseHeader(#"{"t": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}"#, dataBytes: 0)
    }
}

@Test func byteCountOverflowAfterDType() {
    // 2^61 elements fit in Int, but 2^61 × 64 bits do not.
    #expect(throws: SafetensorsError.self) {
        try parseHeader(#"{"t": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}}"#, dataBytes: 0)
    }
}

@Test func dataOffsetsMustMatchShapeTimesDType() {
    #expect(throws: SafetensorsError.sizeMismatch(file: "test.safetensors", tensor: "t", byteOffset: 9, expected: 16, found: 12)) {
        try parseHeader(#"{"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}"#, dataBytes: 12)
    }
}

@Test func dataOffsetsMustBeOrderedNonNegativeIntegers() {
    #expect(throws: SafetensorsError.self) {
        try parseHeader(#"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [2, 1]}}"#, dataBytes: 2)
    }
    #expect(throws: SafetensorsError.self) { try parseHeader(#"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0]}}"#, dataBytes: 1) }
    #expect(throws: SafetensorsError.self) {
        try parseHeader(#"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0.5, 1.5]}}"#, dataBytes: 2)
    }
}

@Test func missingFieldsAndUnknownFields() {
    #expect(
        throws: SafetensorsError.invalidEntry(
            file: "test.safetensors", tensor: "t", byteOffset: 9, reason: "missing or non-string \"dtype\"")
    ) {
        try parseHeader(#"{"t": {"shape": [1], "data_offsets": [0, 1]}}"#, dataBytes: 1)
    }
    #expect(throws: SafetensorsError.invalidEntry(file: "test.safetensors", tensor: "t", byteOffset: 9, reason: "unknown field \"extra\""))
    {
        try parseHeader(#"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1}}"#, dataBytes: 1)
    }
}

@Test func dataOutsideTheDataSection() {
    #expect(throws: SafetensorsError.outOfBounds(file: "test.safetensors", tensor: "t", byteOffset: 77, end: 16, dataSize: 8)) {
        try parseHeader(
            #"{"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#.padding(toLength: 69, withPad: " ", startingAt: 0),
            dataBytes: 8)
    }
}

@Test func overlappingTensors() {
    let header =
        #"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}"#
    let length = header.utf8.count
    #expect(throws: SafetensorsError.overlap(file: "test.safetensors", tensor: "b", byteOffset: 8 + length + 2, previous: "a")) {
        try parseHeader(header, dataBytes: 6)
    }
}

@Test func holeBetweenTensors() {
    let header =
        #"{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}"#
    #expect(throws: SafetensorsError.hole(file: "test.safetensors", tensor: "b", byteOffset: 8 + header.utf8.count + 4, gapBytes: 2)) {
        try parseHeader(header, dataBytes: 6)
    }
}

@Test func bytesAfterTheLastTensor() {
    let header = #"{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}"#
    #expect(throws: SafetensorsError.trailingData(file: "test.safetensors", byteOffset: 8 + header.utf8.count + 2, bytes: 3)) {
        try parseHeader(header, dataBytes: 5)
    }
}

@Test func duplicateTensorNames() {
    #expect(throws: SafetensorsError.duplicateTensor(file: "test.safetensors", tensor: "a", byteOffset: 8 + 61)) {
        try parseHeader(
            #"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}"#,
            dataBytes: 2)
    }
}

@Test func errorsNameFileTensorAndOffset() {
    let error = SafetensorsError.sizeMismatch(
        file: "model-00002.safetensors", tensor: "model.norm.weight", byteOffset: 120, expected: 16, found: 12)
    #expect(error.description.contains("model-00002.safetensors"))
    #expect(error.description.contains("model.norm.weight"))
    #expect(error.description.contains("byte 120"))
}
