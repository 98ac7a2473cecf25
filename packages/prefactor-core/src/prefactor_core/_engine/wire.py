"""Rendering queued operations as the JSON the API expects.

The rendering of each operation type is part of its entry in the table of operation
types (``prefactor_core._engine.optable``); the JSON text primitives are in
``prefactor_core._engine.jsontext``. This module is the engine's import path for both.
"""

from __future__ import annotations

from prefactor_core._engine.jsontext import _OPTIONS, _dumps, encode_json, iso
from prefactor_core._engine.optable import BULK_ACTIONS, render_bulk_item, render_single

__all__ = [
    "BULK_ACTIONS",
    "_OPTIONS",
    "_dumps",
    "encode_json",
    "iso",
    "render_bulk_item",
    "render_single",
]
