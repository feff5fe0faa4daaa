"""Imports every block's models, so that Alembic and the tests see all tables."""
from portal.accounts.models import ApiToken, Merchant, User  # noqa: F401
from portal.audit import AuditEvent  # noqa: F401
from portal.jobs.models import Job  # noqa: F401
from portal.catalog.models import ColumnTemplate, Product, ProductEvent, Upload, UploadIssue  # noqa: F401
from portal.category_mapping.models import (  # noqa: F401
    AttributeMapping, CategoryAttribute, FillInRequest, ManagedCategory, MerchantCategory, TaxonomyCategory, ValueMapping,
)
from portal.pim_export.models import ExportedProduct, ExportRun  # noqa: F401
from portal.orders.models import Order, OrderEvent, OrderLine, OrderRequest  # noqa: F401
from portal.shipping.models import Carrier, Package, PackageLine, Shipment, ShipmentEvent, ShipmentOrder  # noqa: F401
from portal.kpi.models import KpiDaily, KpiThreshold  # noqa: F401
