"""SDK objects and Python values to and from the protobuf wire format; the only code that sees both.

A template's readable view (``describe_template``) is in :mod:`flytelike._serde._decode`, imported by the commands that
show one: a run does not need it.
"""

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
    "encode_values",
    "from_literal",
    "from_literal_map",
    "literal_type",
    "task_template",
    "to_literal",
    "to_literal_map",
]
