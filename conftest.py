"""Test configuration shared by the whole repository.

The fixtures come from ``todo_app.testing``: the same plugin a host project enables,
so there is one copy of them.
"""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["todo_app.testing"]

# Database round trips make examples slow and uneven: no per-example deadline.
settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    max_examples=200,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
