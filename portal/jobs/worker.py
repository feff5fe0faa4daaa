"""Entry point of Celery workers: ``celery -A portal.jobs.worker worker``."""
from portal import create_app
from portal.jobs.services import get_runner

app = create_app()
if not app.config.get("BROKER_URL"):
    raise SystemExit("PORTAL_BROKER_URL is not set: a Celery worker needs a broker (redis://...).")
celery = get_runner(app).celery
