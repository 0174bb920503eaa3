"""Shared test configuration: hypothesis settings profiles.

Pick one with the ``HYPOTHESIS_PROFILE`` environment variable:

* ``ci`` (the default): a few dozen examples per property, so the whole suite stays
  fast;
* ``large``: hundreds of examples, for a deliberate hunt before a release, e.g.
  ``HYPOTHESIS_PROFILE=large .venv/bin/pytest tests/test_convergence_properties.py``.

Stateful tests run a simulated mesh on virtual time; their steps have no wall-clock
meaning, hence ``deadline=None``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "large",
    max_examples=500,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
