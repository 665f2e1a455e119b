"""Write ``tf.train.Example`` TFRecord files without importing TensorFlow.

Importing TensorFlow takes about 5 seconds, longer than writing a shard of a
few hundred examples; the data stages run once per shard, so that import was
most of their cost. The Example message (feature.proto / example.proto) is
declared here from its published field numbers, and a record is framed as
TensorFlow frames it: length, masked CRC-32C of the length, data, masked
CRC-32C of the data. Tests read these files back with TensorFlow.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import TracebackType

import google_crc32c
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _declare() -> descriptor_pool.DescriptorPool:
    proto = descriptor_pb2.FileDescriptorProto(name="artdet/example.proto", package="artdet.example", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> descriptor_pb2.DescriptorProto:
        msg = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            field = msg.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = type_name
            if kind in (_F.TYPE_FLOAT, _F.TYPE_INT64):
                field.options.packed = True
        return msg

    repeated, optional = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    message("BytesList", ("value", 1, repeated, _F.TYPE_BYTES, None))
    message("FloatList", ("value", 1, repeated, _F.TYPE_FLOAT, None))
    message("Int64List", ("value", 1, repeated, _F.TYPE_INT64, None))
    feature = message(
        "Feature",
        ("bytes_list", 1, optional, _F.TYPE_MESSAGE, ".artdet.example.BytesList"),
        ("float_list", 2, optional, _F.TYPE_MESSAGE, ".artdet.example.FloatList"),
        ("int64_list", 3, optional, _F.TYPE_MESSAGE, ".artdet.example.Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message("Features", ("feature", 1, repeated, _F.TYPE_MESSAGE, ".artdet.example.Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=optional, type=_F.TYPE_STRING)
    entry.field.add(name="value", number=2, label=optional, type=_F.TYPE_MESSAGE, type_name=".artdet.example.Feature")
    message("Example", ("features", 1, optional, _F.TYPE_MESSAGE, ".artdet.example.Features"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool


_POOL = _declare()
Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("artdet.example.Example"))


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


class RecordWriter:
    """Append records to a TFRecord file (uncompressed), like ``tf.io.TFRecordWriter``."""

    def __init__(self, path: str | Path):
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in close()/__exit__

    def write(self, record: bytes) -> None:
        length = struct.pack("<Q", len(record))
        self._handle.write(length + _masked_crc(length) + record + _masked_crc(record))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.close()


def count_records(paths: list[str | Path]) -> int:
    """The number of records in TFRecord files, from their framing alone (no parsing, no TensorFlow).

    Each record is a little-endian uint64 length, 4 bytes of CRC, the data and
    4 more bytes of CRC, so counting seeks past the data: a few milliseconds
    for thousands of images.
    """
    count = 0
    for path in paths:
        size = Path(path).stat().st_size
        with open(path, "rb") as handle:
            position = 0
            while position < size:
                header = handle.read(8)
                if len(header) < 8:
                    raise ValueError(f"{path}: truncated TFRecord file (a record header ends at byte {size})")
                (length,) = struct.unpack("<Q", header)
                position += 8 + 4 + length + 4
                if position > size:
                    raise ValueError(f"{path}: truncated TFRecord file (record {count + 1} ends past byte {size})")
                handle.seek(position)
                count += 1
    return count
