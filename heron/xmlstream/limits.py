"""Limits enforced while parsing, before a stanza is buffered whole."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_stanza_bytes: int = 262144
    max_depth: int = 32  # nesting below the stream root
    max_attrs: int = 64  # per element
    max_attr_bytes: int = 8192  # one attribute value
    max_header_bytes: int = 4096
