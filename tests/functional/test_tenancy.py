"""Tenant isolation: another merchant's objects answer 404 on every route that takes an id."""
from __future__ import annotations

import pytest

from sqlalchemy import select

from portal.category_mapping.models import FillInRequest, MerchantCategory
from portal.db import get_session
from portal.jobs.services import enqueue, get_runner
from tests.support.catalog import csv_bytes, import_file, products
from tests.support.mapping import load_taxonomy
from tests.support.orders import bearer, carriers, order_payload, order_status, pickup_day
from tests.support.tenancy import Probe, assert_other_merchant_gets_404

# Routes that take an id but hold no merchant data.
# category_mapping.enum_values and map_value take a marketplace attribute code; the values are the signed-in merchant's.
NOT_MERCHANT_SCOPED = {"static", "accounts.accept_invite", "category_mapping.enum_values", "category_mapping.map_value"}
# Routes with an id that merchant users cannot use at all (403 whoever owns the object); tested below.
STAFF_ONLY = {"category_mapping.lock", "category_mapping.weak_spot", "category_mapping.weak_spot_products",
              "category_mapping.taxonomy_category", "category_mapping.save_requirement",
              "category_mapping.delete_requirement", "category_mapping.assign_manager",
              # Export runs hold no merchant's data and are for operators only.
              "pim_export.show", "pim_export.manifest",
              # Carriers are the marketplace's configuration, edited by operators only.
              "carriers.edit",
              # Carrier events come from the marketplace: any merchant token gets 403, its own shipment or not
              # (tests/functional/test_shipments_api.py).
              "shipments_api.ShipmentEvents",
              # Staff's drill-down from the KPI ranking; merchants see their own figures at /kpi/.
              "kpi.merchant"}


@pytest.fixture
def merchant_a(app, factory):
    """Merchant A with a user, a token and a finished job: the objects merchant B must not reach."""
    merchant = factory.merchant(slug="merchant-a")
    admin = factory.user("merchant_admin", merchant)
    staff = factory.user("merchant_staff", merchant)
    token, secret = factory.token(merchant)
    with app.app_context():
        job = enqueue("audit.export", {"role": "merchant_admin"}, merchant_id=merchant.id, user_id=admin.id)
    get_runner(app).wait(timeout=30)
    upload = import_file(app, merchant.id, csv_bytes([["sku", "title", "price"], ["ONLY-A", "Товар", "10"], ["BAD", "x", "y"]]))
    product = products(app, merchant.id)["ONLY-A"]
    load_taxonomy(app)
    import_file(app, merchant.id, csv_bytes([["sku", "title", "price", "category"], ["CAT-A", "Чайник", "10", "Чайники"]]))
    with app.app_context():
        db = get_session()
        category = db.scalar(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id))
        fill_in = FillInRequest(merchant_id=merchant.id, kind="manual", attributes=["volume_l"], text="Объём?", status="open")
        db.add(fill_in)
        db.commit()
    import_file(app, merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["ORD-A", "Чашка", "10", "5"]]))
    _, operator_secret = factory.token(None)
    order = app.test_client().post("/api/v1/orders", json=order_payload("merchant-a", [("ORD-A", 1)]),
                                   headers=bearer(operator_secret))
    assert order.status_code == 201, order.get_json()
    # A shipment of a second order (accepted), with its package: the first order stays awaiting acceptance.
    carriers(app)
    shipped = app.test_client().post("/api/v1/orders", json=order_payload("merchant-a", [("ORD-A", 1)]),
                                     headers=bearer(operator_secret)).get_json()["id"]
    assert app.test_client().post(f"/api/v1/orders/{shipped}/accept", headers=bearer(secret)).status_code == 200
    shipment = app.test_client().post("/api/v1/shipments", headers=bearer(secret), json={
        "order_ids": [shipped], "carrier": "cdek", "pickup_date": pickup_day(0).isoformat()})
    assert shipment.status_code == 201, shipment.get_json()
    package_id = shipment.get_json()["packages"][0]["id"]
    packed = app.test_client().patch(f"/api/v1/shipments/{shipment.get_json()['id']}/packages/{package_id}",
                                     headers=bearer(secret), json={"weight_grams": 900, "length_mm": 200,
                                                                   "width_mm": 150, "height_mm": 100,
                                                                   "tracking_number": "1234567890"})
    assert packed.status_code == 200, packed.get_json()  # packed: its labels and act can be printed
    return {"merchant": merchant, "admin": admin, "staff": staff, "token": token, "job_id": job.id,
            "upload_id": upload["upload_id"], "product_id": product.id, "merchant_category_id": category.id,
            "request_id": fill_in.id, "order_id": order.get_json()["id"], "shipped_order_id": shipped,
            "shipment_id": shipment.get_json()["id"], "package_id": shipment.get_json()["packages"][0]["id"]}


def web_probes(a) -> list[Probe]:
    return [
        Probe("accounts.set_user_active", "POST", f"/users/{a['staff'].id}/deactivate"),
        Probe("accounts.set_user_active", "POST", f"/users/{a['staff'].id}/reactivate"),
        Probe("accounts.revoke_token", "POST", f"/tokens/{a['token'].id}/revoke"),
        Probe("jobs.show", "GET", f"/jobs/{a['job_id']}"),
        Probe("jobs.status", "GET", f"/jobs/{a['job_id']}/status"),
        Probe("jobs.download", "GET", f"/jobs/{a['job_id']}/download"),
        Probe("catalog.show_upload", "GET", f"/catalog/uploads/{a['upload_id']}"),
        Probe("catalog.mapping", "GET", f"/catalog/uploads/{a['upload_id']}/mapping"),
        Probe("catalog.mapping", "POST", f"/catalog/uploads/{a['upload_id']}/mapping", {"map-0": "sku", "action": "apply"}),
        Probe("catalog.apply_upload", "POST", f"/catalog/uploads/{a['upload_id']}/apply"),
        Probe("catalog.original_file", "GET", f"/catalog/uploads/{a['upload_id']}/file"),
        Probe("catalog.error_report", "GET", f"/catalog/uploads/{a['upload_id']}/errors"),
        Probe("catalog.product", "GET", f"/catalog/products/{a['product_id']}"),
        Probe("category_mapping.category", "GET", f"/mapping/categories/{a['merchant_category_id']}"),
        Probe("category_mapping.confirm", "POST", f"/mapping/categories/{a['merchant_category_id']}/confirm",
              {"category_id": "751"}),
        Probe("category_mapping.reject", "POST", f"/mapping/categories/{a['merchant_category_id']}/reject"),
        Probe("category_mapping.show_request", "GET", f"/mapping/requests/{a['request_id']}"),
        Probe("category_mapping.request_workbook", "GET", f"/mapping/requests/{a['request_id']}/workbook"),
        Probe("category_mapping.return_workbook", "POST", f"/mapping/requests/{a['request_id']}/workbook"),
        Probe("category_mapping.fill_request", "POST", f"/mapping/requests/{a['request_id']}/fill", {"v:1:volume_l": "1"}),
        Probe("category_mapping.close_request", "POST", f"/mapping/requests/{a['request_id']}/close"),
        Probe("orders.show", "GET", f"/orders/{a['order_id']}"),
        Probe("orders.transition", "POST", f"/orders/{a['order_id']}/accept"),
        Probe("orders.transition", "POST", f"/orders/{a['order_id']}/refuse", {"reason": "probe"}),
        Probe("orders.transition", "POST", f"/orders/{a['order_id']}/cancel", {"reason": "probe"}),
        *shipment_web_probes(a),
    ]


def shipment_web_probes(a) -> list[Probe]:
    shipment = f"/shipments/{a['shipment_id']}"
    package = f"{shipment}/packages/{a['package_id']}"
    return [
        Probe("shipping.show", "GET", shipment),
        Probe("shipping.add_orders", "POST", f"{shipment}/orders", {"order_id": str(a["order_id"])}),
        Probe("shipping.remove_order", "POST", f"{shipment}/orders/{a['shipped_order_id']}/remove"),
        Probe("shipping.update_package", "POST", package, {"weight_grams": "1", "tracking_number": "1234567890"}),
        Probe("shipping.split_package", "POST", f"{package}/split"),
        Probe("shipping.merge_package", "POST", f"{package}/merge"),
        *(Probe("shipping.transition", "POST", f"{shipment}/{name}")
          for name in ("ready", "reopen", "handover", "in_transit", "delivered")),
        Probe("shipping.delete", "POST", f"{shipment}/delete"),
        *(Probe("shipping.document", "GET", f"{shipment}/documents/{name}.pdf")
          for name in ("labels", "packing-slips", "handover-act")),
    ]


def api_probes(a) -> list[Probe]:
    return [
        Probe("api_core.JobStatus", "GET", f"/api/v1/jobs/{a['job_id']}"),
        Probe("catalog_api.UploadResult", "GET", f"/api/v1/catalog/uploads/{a['upload_id']}"),
        Probe("catalog_api.ProductOffer", "GET", "/api/v1/products/ONLY-A"),
        Probe("catalog_api.ProductOffer", "PATCH", "/api/v1/products/ONLY-A"),
        Probe("orders_api.OrderOne", "GET", f"/api/v1/orders/{a['order_id']}"),
        Probe("orders_api.OrderTransition", "POST", f"/api/v1/orders/{a['order_id']}/accept"),
        Probe("orders_api.OrderTransition", "POST", f"/api/v1/orders/{a['order_id']}/refuse"),
        *shipment_probes(a),
    ]


def shipment_probes(a) -> list[Probe]:
    shipment = f"/api/v1/shipments/{a['shipment_id']}"
    package = f"{shipment}/packages/{a['package_id']}"
    return [
        Probe("shipments_api.ShipmentOne", "GET", shipment),
        Probe("shipments_api.ShipmentOne", "DELETE", shipment),
        Probe("shipments_api.ShipmentOrders", "POST", f"{shipment}/orders"),
        Probe("shipments_api.ShipmentOrder", "DELETE", f"{shipment}/orders/{a['shipped_order_id']}"),
        Probe("shipments_api.ShipmentPackage", "PATCH", package),
        Probe("shipments_api.ShipmentPackage", "DELETE", package),
        Probe("shipments_api.PackageSplit", "POST", f"{package}/split"),
        *(Probe("shipments_api.ShipmentTransition", "POST", f"{shipment}/{name}")
          for name in ("ready", "reopen", "handover")),
        *(Probe("shipments_api.ShipmentDocument", "GET", f"{shipment}/documents/{name}.pdf")
          for name in ("labels", "packing-slips", "handover-act")),
    ]


def test_another_merchants_admin_gets_404_on_every_page_with_an_id(merchant_a, factory, auth):
    other_admin = factory.user("merchant_admin")
    auth.login(other_admin.email)
    assert_other_merchant_gets_404(auth.client, web_probes(merchant_a))


def test_another_merchants_token_gets_404_on_every_api_route_with_an_id(merchant_a, factory, client):
    _, other_secret = factory.token(factory.merchant())
    assert_other_merchant_gets_404(client, api_probes(merchant_a), bearer=other_secret)


def test_the_owning_merchant_reaches_the_same_objects(merchant_a, auth, client, factory):
    """The control: the probes are real routes that answer their own merchant."""
    auth.login(merchant_a["admin"].email)
    for probe in web_probes(merchant_a):
        if probe.method == "GET":
            assert auth.client.get(probe.path).status_code == 200, probe
    _, own_secret = factory.token(merchant_a["merchant"])
    for probe in api_probes(merchant_a):
        if probe.method == "GET":
            assert client.get(probe.path, headers={"Authorization": f"Bearer {own_secret}"}).status_code == 200


def test_actions_on_another_merchants_objects_change_nothing(merchant_a, factory, auth, app):
    from portal.accounts.models import ApiToken, User

    other_admin = factory.user("merchant_admin")
    auth.login(other_admin.email)
    assert_other_merchant_gets_404(auth.client, web_probes(merchant_a)[:3])
    with app.app_context():
        db = get_session()
        assert db.get(User, merchant_a["staff"].id).is_active_user is True
        assert db.get(ApiToken, merchant_a["token"].id).revoked_at is None


def test_another_merchants_transitions_leave_the_order_as_it_was(merchant_a, factory, auth, client, app):
    """The order probes answer 404 before anything moves: through the pages and through the API."""
    order_probes = [p for p in web_probes(merchant_a) + api_probes(merchant_a) if p.endpoint.startswith("orders")]
    auth.login(factory.user("merchant_admin").email)
    assert_other_merchant_gets_404(auth.client, [p for p in order_probes if not p.path.startswith("/api/")])
    _, other_secret = factory.token(factory.merchant())
    assert_other_merchant_gets_404(client, [p for p in order_probes if p.path.startswith("/api/")], bearer=other_secret)
    assert order_status(app, merchant_a["order_id"]) == "awaiting_acceptance"


def test_another_merchants_shipment_pages_leave_the_shipment_as_it_was(merchant_a, factory, auth, client):
    """The shipment forms answer 404 before anything is read or changed; the owner's API sees the same draft."""
    auth.login(factory.user("merchant_admin").email)
    assert_other_merchant_gets_404(auth.client, shipment_web_probes(merchant_a))
    _, own_secret = factory.token(merchant_a["merchant"])
    shipment = client.get(f"/api/v1/shipments/{merchant_a['shipment_id']}", headers=bearer(own_secret)).get_json()
    assert shipment["status"] == "draft" and [o["id"] for o in shipment["orders"]] == [merchant_a["shipped_order_id"]]
    assert [(p["id"], p["weight_grams"], p["tracking_number"]) for p in shipment["packages"]] == [
        (merchant_a["package_id"], 900, "1234567890")]  # as the fixture packed it
    assert [e["transition"] for e in shipment["history"]] == ["create", "package"]


def test_every_route_with_an_id_is_probed_for_tenant_isolation(app, merchant_a):
    """A new route that takes an id fails here until its probe is added above."""
    with_ids = {rule.endpoint for rule in app.url_map.iter_rules() if rule.arguments} - NOT_MERCHANT_SCOPED - STAFF_ONLY
    probed = {p.endpoint for p in web_probes(merchant_a) + api_probes(merchant_a)}
    assert with_ids - probed == set(), f"routes without a tenant probe: {sorted(with_ids - probed)}"


def test_staff_only_routes_with_an_id_are_closed_to_merchants(merchant_a, factory, auth):
    """Locking is for category managers: any merchant user gets 403, their own category or not."""
    auth.login(merchant_a["admin"].email)
    merchant = merchant_a["merchant"].id
    for method, path in [("POST", f"/mapping/categories/{merchant_a['merchant_category_id']}/lock"),
                         ("GET", "/mapping/weak-spots/751"), ("GET", f"/mapping/weak-spots/751/merchants/{merchant}"),
                         ("GET", "/mapping/taxonomy/751"), ("POST", "/mapping/taxonomy/751/requirements"),
                         ("POST", "/mapping/taxonomy/751/requirements/volume_l/delete"),
                         ("POST", "/mapping/taxonomy/751/managers"), ("GET", "/pim/runs/1"),
                         ("GET", "/pim/runs/1/manifest.json"), ("GET", "/admin/carriers/1/edit"),
                         ("POST", "/admin/carriers/1/edit"), ("GET", f"/kpi/merchants/{merchant}")]:
        response = auth.post(path, csrf_page="/mapping/categories") if method == "POST" else auth.client.get(path)
        assert response.status_code == 403, path
