"""The test suite (see conftest.py).

Every process of a run counts its metrics in one folder of the run's own (openduty.metrics), so that
a test sees what the workers it starts counted. prometheus_client reads the setting once, when first
imported, so it is set here, before conftest imports anything of openduty.
"""

import atexit
import os
import shutil
import tempfile

os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="openduty-metrics-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
