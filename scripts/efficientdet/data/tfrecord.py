"""TFRecord files of `tf.train.Example` detection records, written and read without TensorFlow.

Feature keys are those of the TensorFlow Object Detection API and google/automl. An Example is
encoded straight to protobuf wire format (Example > Features > map<string, Feature>) and framed
as TensorFlow frames records: uint64 length, masked CRC-32C of the length, data, masked CRC-32C
of the data. Tests check that tf.data reads these files back.
"""

import struct

import crc32c

from efficientdet.errors import UserError

ENCODED = "image/encoded"
FORMAT = "image/format"
FILENAME = "image/filename"
SOURCE_ID = "image/source_id"
HEIGHT = "image/height"
WIDTH = "image/width"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
CLASS_LABEL = "image/object/class/label"
CLASS_TEXT = "image/object/class/text"
AREA = "image/object/area"
DIFFICULT = "image/object/difficult"
TRUNCATED = "image/object/truncated"
IS_CROWD = "image/object/is_crowd"

BYTES, FLOAT, INT64 = "bytes", "float", "int64"

FEATURE_TYPES = {
    ENCODED: BYTES,
    FORMAT: BYTES,
    FILENAME: BYTES,
    SOURCE_ID: BYTES,
    HEIGHT: INT64,
    WIDTH: INT64,
    BBOX_XMIN: FLOAT,
    BBOX_YMIN: FLOAT,
    BBOX_XMAX: FLOAT,
    BBOX_YMAX: FLOAT,
    CLASS_LABEL: INT64,
    CLASS_TEXT: BYTES,
    AREA: FLOAT,
    DIFFICULT: INT64,
    TRUNCATED: INT64,
    IS_CROWD: INT64,
}

# Field numbers of tensorflow/core/example/{example,feature}.proto.
_EXAMPLE_FEATURES = 1
_FEATURES_MAP = 1
_MAP_KEY, _MAP_VALUE = 1, 2
_KIND_FIELD = {BYTES: 1, FLOAT: 2, INT64: 3}
_LIST_VALUE = 1
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_CRC_MASK_DELTA = 0xA282EAD8
_UINT64 = (1 << 64) - 1


_SMALL_VARINTS = [bytes((value,)) for value in range(0x80)]


def _varint(value):
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    value &= _UINT64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(field_number, payload):
    return _varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _encode_feature(kind, values):
    if kind == BYTES:
        payload = b"".join([_length_delimited(_LIST_VALUE, value) for value in values])
    elif kind == FLOAT:
        packed = struct.pack(f"<{len(values)}f", *values)
        payload = _length_delimited(_LIST_VALUE, packed) if packed else b""
    else:
        packed = b"".join([_varint(int(value)) for value in values])
        payload = _length_delimited(_LIST_VALUE, packed) if packed else b""
    return _length_delimited(_KIND_FIELD[kind], payload)


# Serialized map-entry keys, computed once: most of an Example's fields are these constants.
_ENTRY_KEYS = {key: _length_delimited(_MAP_KEY, key.encode()) for key in FEATURE_TYPES}


def encode_example(features):
    """Serializes {key: list of values} to tf.train.Example bytes; types come from FEATURE_TYPES."""
    entries = b"".join(
        [
            _length_delimited(
                _FEATURES_MAP,
                _ENTRY_KEYS[key]
                + _length_delimited(_MAP_VALUE, _encode_feature(FEATURE_TYPES[key], values)),
            )
            for key, values in features.items()
        ]
    )
    return _length_delimited(_EXAMPLE_FEATURES, entries)


def _read_varint(buffer, position):
    result = shift = 0
    while True:
        if position >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(buffer):
    """Yields (field_number, wire_type, value) of one protobuf message."""
    position = 0
    while position < len(buffer):
        tag, position = _read_varint(buffer, position)
        wire_type = tag & 7
        if wire_type == _VARINT:
            value, position = _read_varint(buffer, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _read_varint(buffer, position)
            value = buffer[position : position + length]
            if len(value) != length:
                raise ValueError("truncated field")
            position += length
        elif wire_type in (_FIXED32, _FIXED64):
            width = 4 if wire_type == _FIXED32 else 8
            value = buffer[position : position + width]
            position += width
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield tag >> 3, wire_type, value


def _signed64(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_list(kind, payload):
    values = []
    for _, wire_type, value in _fields(payload):
        if kind == BYTES:
            values.append(bytes(value))
        elif kind == FLOAT:
            values.extend(struct.unpack(f"<{len(value) // 4}f", value))
        elif wire_type == _LENGTH_DELIMITED:
            position = 0
            while position < len(value):
                number, position = _read_varint(value, position)
                values.append(_signed64(number))
        else:
            values.append(_signed64(value))
    return values


def parse_example(data):
    """tf.train.Example bytes -> {key: list of values} (bytes, floats or ints)."""
    kinds = {number: kind for kind, number in _KIND_FIELD.items()}
    features = {}
    for number, _, message in _fields(data):
        if number != _EXAMPLE_FEATURES:
            continue
        for _, _, entry in _fields(message):
            entry_fields = {field: value for field, _, value in _fields(entry)}
            key = bytes(entry_fields.get(_MAP_KEY, b"")).decode()
            features[key] = []
            for kind_number, _, payload in _fields(entry_fields.get(_MAP_VALUE, b"")):
                features[key] = _decode_list(kinds[kind_number], payload)
    return features


def _masked_crc(data):
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def write_records(path, records):
    """Writes serialized records to a TFRecord file (uncompressed); returns their number."""
    count = 0
    with open(path, "wb") as stream:
        for record in records:
            header = struct.pack("<Q", len(record))
            stream.write(header + struct.pack("<I", _masked_crc(header)))
            stream.write(record + struct.pack("<I", _masked_crc(record)))
            count += 1
    return count


def read_records(path):
    """Yields the serialized records of a TFRecord file, checking both CRCs of each."""
    with open(path, "rb") as stream:
        index = 0
        while header := stream.read(12):
            length_bytes, length_crc = header[:8], header[8:]
            if len(header) < 12 or struct.unpack("<I", length_crc)[0] != _masked_crc(length_bytes):
                raise UserError(f"{path}: record {index}: corrupt or truncated length header")
            (length,) = struct.unpack("<Q", length_bytes)
            body = stream.read(length + 4)
            record, crc = body[:length], body[length:]
            if len(body) < length + 4 or struct.unpack("<I", crc)[0] != _masked_crc(record):
                raise UserError(f"{path}: record {index}: data CRC mismatch or truncated data")
            yield record
            index += 1
