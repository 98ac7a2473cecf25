"""The status and bulk action names of prefactor_http.models.types agree with its types.

The constants are what the three packages send and check; the ``Literal`` types are what
the models and signatures accept. A name added to one but not the other fails here.
"""

from __future__ import annotations

from typing import get_args

from prefactor_http.models import types


def test_status_sets_match_the_literal_types() -> None:
    """Every status set is the Literal type's values, in lifecycle order."""
    assert get_args(types.AgentStatus) == types.INSTANCE_STATUSES
    assert get_args(types.FinishStatus) == types.FINISH_STATUSES
    assert (
        tuple(s for s in get_args(types.AgentStatus) if s != types.STATUS_TERMINATED)
        == types.SPAN_STATUSES
    )
    assert set(types.OPEN_STATUSES) | set(types.FINISH_STATUSES) == set(types.SPAN_STATUSES)
    assert not set(types.OPEN_STATUSES) & set(types.FINISH_STATUSES)


def test_bulk_action_names_match_the_literal_type() -> None:
    """The bulk action names are the Literal type's values, each once."""
    assert get_args(types.BulkActionName) == types.BULK_ACTION_NAMES
    assert len(set(types.BULK_ACTION_NAMES)) == 6


def test_every_name_is_exported() -> None:
    """Each status and action constant is public (in ``__all__``)."""
    names = [n for n in dir(types) if n.startswith(("STATUS_", "ACTION_"))]
    assert len(names) == 12
    assert set(names) <= set(types.__all__)
