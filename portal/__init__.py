"""The merchant portal: the application factory."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, request, session

from portal.config import load_config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides the ``PORTAL_*`` environment (tests use it)."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(load_config(config))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from portal import db, templating
    from portal.extensions import api, babel, csrf, limiter, login_manager, talisman
    from portal.jobs import services as jobs

    db.init_app(app)
    jobs.init_app(app)
    templating.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    production = app.config["ENV_NAME"] == "production"
    talisman.init_app(
        app,
        force_https=False,  # TLS ends at the load balancer; it redirects
        strict_transport_security=production,
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        content_security_policy={
            "default-src": "'self'",
            "img-src": "'self' data:",  # Bootstrap draws some icons as data: SVGs
            "object-src": "'none'",
            "frame-ancestors": "'none'",
        },
    )
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message_category = "warning"
    api.init_app(
        app,
        spec_kwargs={
            "info": {"description": "JSON API of the merchant portal. Authenticate with `Authorization: Bearer <token>`."},
            "security": [{"bearerAuth": []}],
        },
    )
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})

    from portal.accounts.services import load_user

    login_manager.user_loader(load_user)
    login_manager.localize_callback = _localize
    app.before_request(_check_schema)


def _localize(message: str) -> str:
    from flask_babel import gettext

    return gettext(message)


def register_blueprints(app: Flask) -> None:
    from portal.accounts.views import admin_bp, bp as accounts_bp
    from portal.api.views import blp as api_core_blp
    from portal.catalog.api import blp as catalog_api_blp
    from portal.catalog.views import bp as catalog_bp
    from portal.kpi.api import blp as kpi_api_blp
    from portal.kpi.views import bp as kpi_bp
    import portal.kpi.report_views  # noqa: F401  (adds the report buttons' route to the KPI blueprint)
    import portal.kpi.staff_views  # noqa: F401  (adds the staff pages to the KPI blueprint)
    from portal.category_mapping.views import bp as category_mapping_bp
    from portal.orders.api import blp as orders_api_blp
    from portal.orders.views import bp as orders_bp
    from portal.pim_export.views import bp as pim_export_bp
    from portal.shipping.api import blp as shipments_api_blp
    from portal.shipping.carrier_views import carriers_bp
    from portal.shipping.views import bp as shipping_bp
    from portal.extensions import api
    from portal.home import bp as home_bp
    from portal.jobs.views import bp as jobs_bp

    app.register_blueprint(home_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(catalog_bp)
    app.register_blueprint(category_mapping_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(pim_export_bp)
    app.register_blueprint(shipping_bp)
    app.register_blueprint(carriers_bp)
    app.register_blueprint(kpi_bp)
    api.register_blueprint(api_core_blp)
    api.register_blueprint(catalog_api_blp)
    api.register_blueprint(orders_api_blp)
    api.register_blueprint(shipments_api_blp)
    api.register_blueprint(kpi_api_blp)

    import portal.audit_export  # noqa: F401  (registers its job)
    import portal.orders.reports  # noqa: F401  (registers its job)
    import portal.kpi.services  # noqa: F401  (registers the rollup job)


def register_errorhandlers(app: Flask) -> None:
    from portal import errors

    errors.init_app(app)


def register_commands(app: Flask) -> None:
    from portal.cli import register

    register(app)


def select_locale() -> str:
    from flask import has_request_context
    from flask_login import current_user

    languages = ("en", "ru")
    if not has_request_context():
        return "en"
    user_locale = getattr(current_user, "locale", None) if current_user else None
    if user_locale in languages:
        return user_locale
    if session.get("locale") in languages:
        return session["locale"]
    return request.accept_languages.best_match(languages) or "en"


def _check_schema() -> Any:
    """Refuse to serve on an out-of-date schema; the answer says to run ``portal db upgrade``."""
    from flask import current_app

    if not current_app.config["CHECK_SCHEMA"] or current_app.extensions.get("portal.schema_ok"):
        return None
    from portal.errors import error_response
    from portal.migrate import schema_problem

    problem = schema_problem(current_app)
    if problem is None:
        current_app.extensions["portal.schema_ok"] = True
        return None
    g.schema_problem = problem
    current_app.logger.error(problem)
    return error_response(503, "schema_out_of_date", problem)
