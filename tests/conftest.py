"""Settings for the whole suite.

Hypothesis's per-example deadline is a timed assertion: on a loaded machine
(CI, or a benchmark beside the tests) a correct example can take longer
than 200 ms and fail the run. Correctness is what the properties check, so
the suite runs without it.
"""

from hypothesis import settings

settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
