import os

# No test may reach the real Hub: a cache miss there hangs ~23 s before failing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
pytest_plugins = ["hub_fixtures"]
