"""`python -m bench.case_entry module:function '{"kwarg": ...}'`: one case, in this process.

Sets Django up when the environment names a database, runs the function, and
prints its result after RESULT_MARKER with this process's peak memory.
"""

import importlib
import json
import os
import sys

from bench.framework import RESULT_MARKER, peak_rss_mb


def main() -> None:
    target, kwargs = sys.argv[1], json.loads(sys.argv[2])
    if os.environ.get("DATABASE_URL") or os.environ.get("DJANGO_SETTINGS_MODULE"):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "techbank_site.settings")
        import django

        django.setup()
    module_name, function_name = target.split(":")
    result = getattr(importlib.import_module(module_name), function_name)(**kwargs)
    print(RESULT_MARKER + json.dumps({"result": result, "peak_rss_mb": peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    main()
