"""The post ledger a pipeline imports: post, schedule_post, PostStatus and its transitions.

Importable next to a pipeline's own `utils` package (see `_leaves.py`)::

    from autonomiq_ledger import PostStatus, post, schedule_post
"""

from __future__ import annotations

from autonomiq_ledger.posting import PostResult, get_post, post, schedule_post, transition
from autonomiq_ledger.status import (
    CLAIMABLE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    PostStatus,
    allowed,
)

__all__ = ["CLAIMABLE", "TERMINAL", "TRANSITIONS", "IllegalTransition", "PostResult", "PostStatus",
           "allowed", "get_post", "post", "schedule_post", "transition"]
