"""SDK objects and Python values to and from the protobuf wire format; the only code that sees both."""

from flytelike._serde._decode import describe_template
from flytelike._serde._literals import (
    decode_values,
    encode_values,
    from_literal,
    from_literal_map,
    literal_type,
    to_literal,
    to_literal_map,
)
from flytelike._serde._template import DEFAULT_IMAGE, code_module, task_template

__all__ = [
    "DEFAULT_IMAGE",
    "code_module",
    "decode_values",
    "describe_template",
    "encode_values",
    "from_literal",
    "from_literal_map",
    "literal_type",
    "task_template",
    "to_literal",
    "to_literal_map",
]
