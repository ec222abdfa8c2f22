"""WSGI entry point for the bench: `gunicorn bench.wsgi`.

Vendo's application (config.wsgi) with bench.settings, which only adds /bench/baseline/ to
the URLs, so production code and URLs stay untouched.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

from config.wsgi import application

__all__ = ["application"]
