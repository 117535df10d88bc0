"""The jobfleet Grafana dashboards as Python: shared builders (``panels``) and one module per dashboard.

This folder is not part of the installed ``jobfleet`` package. ``grafana/generate_dashboards.py`` imports it as the
top-level package ``boards`` because Python puts a script's own folder (``grafana/``) first on ``sys.path``; code
that loads the generator by file path instead (the drift test) puts ``grafana/`` on ``sys.path`` itself.
"""
