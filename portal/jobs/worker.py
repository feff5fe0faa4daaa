"""Entry point of Celery workers: ``celery -A portal.jobs.worker worker``."""
from portal import create_app
from portal.jobs.services import get_runner

flask_app = create_app()  # not named `app`: Celery would take a module's `app` for itself
if not flask_app.config.get("BROKER_URL"):
    raise SystemExit("PORTAL_BROKER_URL is not set: a Celery worker needs a broker (redis://...).")
celery = get_runner(flask_app).celery
