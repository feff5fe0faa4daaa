"""WSGI entry point (`gunicorn wsgi:app`): refuses to start on an out-of-date schema."""
import sys

from portal import create_app
from portal.migrate import schema_problem

app = create_app()
_problem = schema_problem(app)
if _problem:
    sys.stderr.write(_problem + "\n")
    raise SystemExit(3)
