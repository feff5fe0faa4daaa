"""The ``portal`` command: Flask's CLI of the app plus the portal's own commands."""
from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup, FlaskGroup

from portal.accounts.models import MERCHANT_ROLES, STAFF_ROLES
from portal.errors import PortalError


def main() -> None:
    from portal import create_app

    cli = FlaskGroup(create_app=lambda: create_app(), help="The merchant portal's command line.")
    cli.main(prog_name="portal")


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result on stdout.")(func)


def emit(as_json: bool, payload: Any, human: str) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str) if as_json else human)


def portal_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Check the schema first, and turn domain errors into a message (or JSON error) and exit code 1."""

    @wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from portal.migrate import schema_problem

        problem = schema_problem(current_app)
        if problem:
            raise click.ClickException(problem)
        try:
            return func(*args, **kwargs)
        except PortalError as exc:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": {"code": exc.code, "message": exc.message, "details": exc.details}},
                                      ensure_ascii=False))
                sys.exit(1)
            raise click.ClickException(exc.message) from exc

    return wrapped


# -- portal db ---------------------------------------------------------------------------------

db_cli = AppGroup("db", help="Database schema (Alembic migrations in migrations/).")


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
def db_upgrade(revision: str) -> None:
    """Bring the schema up to the code's migrations."""
    from portal import migrate

    migrate.upgrade(current_app, revision)
    click.echo(f"Database at {', '.join(migrate.current_revisions(current_app)) or 'base'}.")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Step the schema back to REVISION (developers only; data in dropped tables is lost)."""
    from portal import migrate

    migrate.downgrade(current_app, revision)


@db_cli.command("migrate")
@click.option("-m", "--message", required=True, help="What the migration changes.")
@click.option("--empty", is_flag=True, help="Write an empty migration instead of comparing models and schema.")
def db_migrate(message: str, empty: bool) -> None:
    """Write a new migration from the difference between the models and the database (developers)."""
    from portal import migrate

    migrate.revision(current_app, message, autogenerate=not empty)


@db_cli.command("current")
def db_current() -> None:
    """Show the database's revision and whether it is current."""
    from portal import migrate

    click.echo(", ".join(migrate.current_revisions(current_app)) or "base (empty)")
    click.echo(migrate.schema_problem(current_app) or "Up to date.")


# -- merchants, users, tokens ------------------------------------------------------------------

merchants_cli = AppGroup("merchants", help="Merchants (sellers) of the marketplace.")


@merchants_cli.command("create")
@click.option("--slug", required=True, help="Short unique id used in URLs and files, e.g. acme-tools.")
@click.option("--name", required=True, help="Display name.")
@json_option
@portal_command
def merchants_create(slug: str, name: str, as_json: bool) -> None:
    from portal.accounts.services import create_merchant
    from portal.db import session

    merchant = create_merchant(session, slug=slug, name=name)
    emit(as_json, {"id": merchant.id, "slug": merchant.slug, "name": merchant.name},
         f"Merchant {merchant.slug} created (id {merchant.id}).")


users_cli = AppGroup("users", help="Users of the cabinet.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice(list(MERCHANT_ROLES + STAFF_ROLES)))
@click.option("--merchant", "merchant_slug", help="Merchant slug (merchant roles only).")
@click.option("--name", "full_name", default="", help="Full name.")
@json_option
@portal_command
def users_create(email: str, password: str, role: str, merchant_slug: str | None, full_name: str, as_json: bool) -> None:
    from portal.accounts.services import create_user, merchant_by_slug
    from portal.db import session

    merchant = merchant_by_slug(session, merchant_slug) if merchant_slug else None
    user = create_user(session, email=email, password=password, role=role, merchant=merchant, full_name=full_name)
    emit(as_json, {"id": user.id, "email": user.email, "role": user.role, "merchant": merchant_slug},
         f"User {user.email} ({user.role}) created (id {user.id}).")


tokens_cli = AppGroup("tokens", help="API tokens for machine clients.")


@tokens_cli.command("create")
@click.option("--merchant", "merchant_slug", help="Merchant slug: a token confined to that merchant.")
@click.option("--operator", is_flag=True, help="An operator token (the marketplace's own systems).")
@click.option("--name", default="CLI token", help="What the token is for.")
@json_option
@portal_command
def tokens_create(merchant_slug: str | None, operator: bool, name: str, as_json: bool) -> None:
    """Create a token and print it once; only its hash is stored."""
    from portal.accounts.services import create_token, merchant_by_slug
    from portal.db import session

    if bool(merchant_slug) == operator:
        raise click.UsageError("Give exactly one of --merchant SLUG or --operator.")
    merchant = merchant_by_slug(session, merchant_slug) if merchant_slug else None
    token, secret = create_token(session, name=name, merchant=merchant)
    emit(as_json, {"id": token.id, "name": token.name, "merchant": merchant_slug, "operator": operator, "token": secret},
         f"{secret}\n(token {token.id}, {'operator' if operator else 'merchant ' + str(merchant_slug)}; "
         "it is shown only now, store it safely)")


# -- demo --------------------------------------------------------------------------------------

demo_cli = AppGroup("demo", help="The demo marketplace.")


@demo_cli.command("seed")
@click.option("--merchants", "merchant_count", default=3, show_default=True, type=click.IntRange(1, 50))
@click.option("--products", "product_count", default=40, show_default=True, type=click.IntRange(0, 1_000_000),
              help="Products in each demo merchant's catalog.")
@click.option("--orders", "order_count", default=120, show_default=True, type=click.IntRange(0, 100_000),
              help="Orders in each demo merchant's history, over the last four months and in every state (0: none).")
@click.option("--seed", "seed", default=1, show_default=True, help="Random seed: the same seed gives the same data.")
@click.option("--if-empty", is_flag=True, help="Create nothing when the database already has merchants.")
@json_option
@portal_command
def demo_seed(merchant_count: int, product_count: int, order_count: int, seed: int, if_empty: bool,
              as_json: bool) -> None:
    """Create a believable demo marketplace and print its logins."""
    from portal.db import session
    from portal.demo import seed_demo

    result = seed_demo(session, merchants=merchant_count, products=product_count, orders=order_count, seed=seed,
                       if_empty=if_empty)
    lines = [f"Demo marketplace: {'created' if result['created'] else 'already there'}.", "", "Demo logins:"]
    lines += [f"  {u['role']:<17} {u['email']:<36} {u['password']}  {u['merchant'] or ''}" for u in result["users"]]
    emit(as_json, result, "\n".join(lines))


# -- catalog -----------------------------------------------------------------------------------

catalog_cli = AppGroup("catalog", help="Merchants' catalogs.")


@catalog_cli.command("import")
@click.option("--merchant", "merchant_slug", required=True, help="Merchant slug.")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option("--deactivate-missing", is_flag=True, help="The file is the whole catalog: deactivate products not in it.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@portal_command
def catalog_import(merchant_slug: str, dry_run: bool, deactivate_missing: bool, file: str, as_json: bool) -> None:
    """Upload FILE for a merchant through the same pipeline as the cabinet, and print its counts."""
    from pathlib import Path

    from portal.accounts.services import merchant_by_slug
    from portal.catalog import services
    from portal.db import session
    from portal.tenancy import Principal

    merchant = merchant_by_slug(session, merchant_slug)
    principal = Principal(role="merchant_admin", merchant_id=merchant.id)
    with open(file, "rb") as stream:
        upload = services.receive_upload(session, principal, stream=stream, filename=Path(file).name, source="cli")
    if upload.status != "failed":
        if deactivate_missing:
            services.update_mapping(session, upload, upload.mapping, principal=principal, deactivate_missing_products=True)
        upload = services.process_upload(session, upload.id, dry_run=dry_run)
    result = services.upload_result(session, upload, limit=20)
    lines = [f"Upload {result['upload_id']}: {result['status']}" + (" (dry run)" if dry_run else "")]
    lines.append(", ".join(f"{k} {result[k]}" for k in ("rows", "created", "updated", "unchanged", "rejected", "warnings")))
    lines += [f"  row {e['row'] or '-'} {e['column'] or ''}: {e['message']} [{e['code']}]" for e in result["errors"]]
    emit(as_json, result, "\n".join(lines))
    if upload.status == "failed":
        sys.exit(1)


# -- taxonomy and mapping ------------------------------------------------------------------------

taxonomy_cli = AppGroup("taxonomy", help="The marketplace taxonomy and its attribute requirements.")


def _read_text(file: str) -> str:
    with open(file, encoding="utf-8-sig") as handle:
        try:
            return handle.read()
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"{file} is not UTF-8 text (byte {exc.start}).") from None


@taxonomy_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@json_option
@portal_command
def taxonomy_import(file: str | None, as_json: bool) -> None:
    """Load FILE (Google Product Taxonomy lines, or a CSV id,parent_id,name); the shipped taxonomy by default.

    Ids stay stable: a re-import reports added, renamed and removed categories.
    """
    from portal.category_mapping import services
    from portal.category_mapping.services import DEFAULT_TAXONOMY
    from portal.db import session

    report = services.import_taxonomy(session, _read_text(file or str(DEFAULT_TAXONOMY)))
    result = report.as_dict()
    lines = [f"Taxonomy: {result['added']} added, {result['renamed']} renamed, {result['removed']} removed, "
             f"{result['unchanged']} unchanged."]
    lines += [f"  renamed {r['id']}: {r['from']} -> {r['to']}" for r in result["renamed_categories"][:20]]
    emit(as_json, result, "\n".join(lines))


@taxonomy_cli.command("requirements")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@portal_command
def taxonomy_requirements(file: str, as_json: bool) -> None:
    """Load per-category attribute requirements from a CSV (category_id,code,name_en,name_ru,type,unit,required,allowed_values)."""
    from portal.category_mapping import services
    from portal.db import session

    report = services.load_requirements(session, _read_text(file)).as_dict()
    emit(as_json, report, f"Requirements of {report['categories']} categories: {report['added']} added, "
                          f"{report['changed']} changed, {report['removed']} removed.")


mapping_cli = AppGroup("mapping", help="Merchants' categories mapped onto the marketplace taxonomy.")


@mapping_cli.command("suggest")
@click.option("--merchant", "merchant_slug", required=True, help="Merchant slug.")
@json_option
@portal_command
def mapping_suggest(merchant_slug: str, as_json: bool) -> None:
    """Each category of the merchant's catalog with its top 3 marketplace categories and their confidence."""
    from portal.accounts.services import merchant_by_slug
    from portal.category_mapping import services
    from portal.db import session

    merchant = merchant_by_slug(session, merchant_slug)
    result = services.suggest_merchant(session, merchant.id)
    lines = []
    for item in result:
        lines.append(f"{item['merchant_category']} ({item['products']} products, {item['status']})")
        lines += [f"    {s['confidence']:.2f}  {s['category_id']}  {s['path']}" for s in item["suggestions"]]
    emit(as_json, result, "\n".join(lines) or "The merchant's products have no categories.")


# -- pim export ---------------------------------------------------------------------------------

pim_cli = AppGroup("pim", help="The export of ready products to the marketplace PIM.")


@pim_cli.command("export")
@click.option("--full", "kind", flag_value="full", help="Every ready product (the PIM replaces its copy).")
@click.option("--delta", "kind", flag_value="delta", help="What changed since the last successful export, with tombstones.")
@json_option
@portal_command
def pim_export(kind: str | None, as_json: bool) -> None:
    """Write ready products to PORTAL_PIM_EXPORT_URL: parts, then manifest.json, then products/LATEST.json."""
    from portal.db import session
    from portal.pim_export.services import run_export

    if kind is None:
        raise click.UsageError("Say --full or --delta.")
    # The process ends with the run: objects made while starting up need no more garbage collection passes.
    gc.freeze()
    run = run_export(session, kind, trigger="cli")
    result = run.summary()
    human = (f"Export {run.run_id} ({run.kind}): {run.status}; {run.records} records, {run.tombstones} tombstones "
             f"in {run.files} files" + (f"; manifest {run.manifest_key}" if run.manifest_key else ""))
    if run.reason:
        human += f"\n{run.reason_text}"
    if run.error:
        human += f"\n{run.error}"
    emit(as_json, result, human)
    if run.status != "succeeded":
        sys.exit(1)


# -- orders ------------------------------------------------------------------------------------

orders_cli = AppGroup("orders", help="Orders from the marketplace.")


@orders_cli.command("expire")
@json_option
@portal_command
def orders_expire(as_json: bool) -> None:
    """Refuse the orders not accepted by their acceptance deadline (run it every few minutes)."""
    from portal.db import session
    from portal.orders.services import expire_orders

    refused = expire_orders(session)
    human = f"{len(refused)} orders refused automatically" + (": " + ", ".join(refused) if refused else ".")
    emit(as_json, {"refused": len(refused), "orders": refused}, human)


# -- carriers ----------------------------------------------------------------------------------

carriers_cli = AppGroup("carriers", help="Carriers the merchants ship with (operators edit them in the cabinet).")


@carriers_cli.command("load-defaults")
@json_option
@portal_command
def carriers_load_defaults(as_json: bool) -> None:
    """Add the default carriers that are missing; carriers already there (edited or not) stay as they are."""
    from portal.db import session
    from portal.shipping.carrier_services import load_defaults

    added = load_defaults(session)
    human = f"{len(added)} carriers added" + (": " + ", ".join(added) if added else "; all were there already.")
    emit(as_json, {"added": added}, human)


# -- shipping ----------------------------------------------------------------------------------

shipping_cli = AppGroup("shipping", help="Shipping: help against late shipment.")


@shipping_cli.command("digest")
@click.option("--merchant", "slug", default=None, help="one merchant's slug (default: every active merchant)")
@click.option("--lang", type=click.Choice(["en", "ru"]), default="ru", show_default=True)
@json_option
@portal_command
def shipping_digest(slug: str | None, lang: str, as_json: bool) -> None:
    """The daily digest of each merchant, ready to e-mail: orders at risk of late shipment, open shipments."""
    from flask_babel import force_locale

    from portal.db import session
    from portal.shipping.queries import digests

    with force_locale(lang):
        found = digests(session, merchant_slug=slug)
    if slug and not found:
        raise click.ClickException(f"There is no merchant {slug}.")
    emit(as_json, found, "\n".join(str(item["text"]) for item in found))


# -- kpi ---------------------------------------------------------------------------------------

kpi_cli = AppGroup("kpi", help="KPI: merchants' health against the marketplace's thresholds.")


@kpi_cli.command("show")
@click.option("--merchant", "merchant_slug", required=True, help="Merchant slug.")
@click.option("--days", type=click.Choice(["7", "30", "90"]), default=None,
              help="Every windowed metric over the last N days (default: each metric over its own window).")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day, YYYY-MM-DD.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day, YYYY-MM-DD (included).")
@json_option
@portal_command
def kpi_show(merchant_slug: str, days: str | None, date_from: Any, date_to: Any, as_json: bool) -> None:
    """A merchant's KPI against the thresholds, with the early warnings (the same as GET /api/v1/kpi)."""
    from portal.accounts.services import merchant_by_slug
    from portal.db import session
    from portal.kpi.api import kpi_payload
    from portal.kpi.reports import check_period, period_of
    from portal.kpi.services import SYSTEM

    merchant = merchant_by_slug(session, merchant_slug)
    args = check_period(int(days) if days else None, date_from.date() if date_from else None,
                        date_to.date() if date_to else None, names=("--days", "--from", "--to"))
    result = kpi_payload(session, SYSTEM, merchant.id, merchant.slug, period=period_of(args))
    emit(as_json, result, _kpi_table(result))


def _kpi_table(result: dict[str, Any]) -> str:
    from flask_babel import gettext, ngettext

    from portal.kpi.metrics import BY_KEY, METRICS, STATUS_LABELS, display

    def counted(figure: dict[str, Any]) -> str:
        if figure["numerator"] is not None and figure["denominator"] is not None:
            return f"{figure['numerator']} / {figure['denominator']}"
        return f"n = {figure['denominator']}" if figure["denominator"] is not None else ""

    header = [gettext("Metric"), gettext("Value"), gettext("Status"), gettext("Counted"), gettext("Threshold")]
    rows = [[str(m.label), display(m, result[m.key]["value"]), str(STATUS_LABELS[result[m.key]["status"]]),
             counted(result[m.key]),
             display(m, result[m.key]["threshold"]) if result[m.key]["threshold"] is not None else ""]
            for m in METRICS]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [gettext("KPI of %(merchant)s", merchant=result["merchant"])]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    if result["warnings"]:
        lines += ["", gettext("Early warnings:")]
    for warning in result["warnings"]:
        metric = BY_KEY[warning["metric"]]
        lines.append("  " + ngettext(
            "%(metric)s: %(num)d order at risk (%(numbers)s) would take it from %(value)s to %(projected)s "
            "(%(status)s).",
            "%(metric)s: %(num)d orders at risk (%(numbers)s) would take it from %(value)s to %(projected)s "
            "(%(status)s).",
            warning["orders"], metric=metric.label, numbers=", ".join(warning["order_numbers"]),
            value=display(metric, warning["value"]), projected=display(metric, warning["projected"]),
            status=STATUS_LABELS[warning["projected_status"]]))
    return "\n".join(lines)


@kpi_cli.command("rollup")
@click.option("--days", default=None, type=click.IntRange(min=1),
              help="Recount this many days back, today included (default: 8, the hourly job's; the whole "
                   "history on the first run).")
@json_option
@portal_command
def kpi_rollup(days: int | None, as_json: bool) -> None:
    """Recount the daily KPI rollups the trends and reports read (run it hourly)."""
    from flask_babel import gettext

    from portal.db import session
    from portal.kpi.services import MAX_ROLLUP_DAYS, rollup

    if days is not None and days > MAX_ROLLUP_DAYS:
        raise click.BadParameter(f"at most {MAX_ROLLUP_DAYS}", param_hint="--days")
    result = rollup(session, days=days)
    emit(as_json, result, gettext("KPI rollup: %(rows)s merchant-days counted from %(first)s to %(last)s.",
                                  rows=result["rows"], first=result["from"], last=result["to"]))


def register(app: Any) -> None:
    for group in (db_cli, merchants_cli, users_cli, tokens_cli, demo_cli, catalog_cli, taxonomy_cli, mapping_cli,
                  orders_cli, pim_cli, carriers_cli, shipping_cli, kpi_cli):
        app.cli.add_command(group)
