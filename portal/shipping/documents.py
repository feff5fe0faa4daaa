"""A shipment's printed documents as PDF: package labels with a Code 128 barcode, packing slips, the handover act."""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from flask import has_app_context
from flask_babel import force_locale, format_date, format_datetime, format_decimal, gettext
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepInFrame,
    KeepTogether,
    LongTable,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from portal.config import LANGUAGES

FONTS_DIR = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"

LABEL_SIZE = (100 * mm, 150 * mm)
LABEL_MARGIN = 4 * mm
# Code 128 printed for a scanner, and for a 200 dpi render in the tests: no bar thinner than
# 0.4 mm (3 pixels at 200 dpi, 3 dots on a 203 dpi label printer), 0.5 mm when the code leaves room.
BAR_WIDTH_MAX = 0.5 * mm
BAR_WIDTH_MIN = 0.4 * mm
BAR_HEIGHT = 24 * mm
QUIET_MODULES = 10  # ISO/IEC 15417 asks for at least ten module widths of white on either side

A4_MARGIN = 15 * mm
A4_WIDTH = A4[0] - 2 * A4_MARGIN  # of the text and tables
GREY = colors.HexColor("#6c757d")
LIGHT = colors.HexColor("#f1f3f5")


@dataclass(frozen=True)
class Address:
    """Who receives a package or an order, and where."""

    name: str
    phone: str
    country: str
    city: str
    postal_code: str
    line1: str


@dataclass(frozen=True)
class LineDoc:
    """An order line: on a package, the quantity packed in it; on a packing slip, the quantity ordered."""

    order_number: str
    sku: str
    title: str
    quantity: int


@dataclass(frozen=True)
class PackageDoc:
    code: str  # e.g. "PKG-000123": the barcode's content, printable ASCII
    index: int  # 1-based, among ``of`` packages
    weight_grams: int
    length_mm: int
    width_mm: int
    height_mm: int
    tracking_number: str | None
    ship_to: Address
    order_numbers: tuple[str, ...]
    lines: tuple[LineDoc, ...]
    # How many packages the label's "i of n" counts: its order's (0: the shipment's).
    of: int = 0


@dataclass(frozen=True)
class OrderDoc:
    order_number: str
    created_at: datetime
    ship_by: datetime
    ship_to: Address
    lines: tuple[LineDoc, ...]  # as ordered
    # (sku, codes of the packages holding it) pairs: a tuple, not a dict, so the frozen dataclass stays hashable.
    packages_of_line: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def package_codes(self, sku: str) -> tuple[str, ...]:
        return dict(self.packages_of_line).get(sku, ())


@dataclass(frozen=True)
class ShipmentDoc:
    number: str  # e.g. "SHP-000042"
    merchant_name: str
    carrier_name: str
    pickup_date: date
    created_at: datetime
    packages: tuple[PackageDoc, ...]
    orders: tuple[OrderDoc, ...]
    locale: str = "en"  # the language of the document's words; the data is printed as it is

    def __post_init__(self) -> None:
        if self.locale not in LANGUAGES:
            raise ValueError(f"documents are printed in {', '.join(LANGUAGES)}, not {self.locale!r}")


# --- public functions --------------------------------------------------------------------------------------------


def labels_pdf(shipment: ShipmentDoc) -> bytes:
    """One 100 × 150 mm label per package, in the order of ``shipment.packages``."""
    if not shipment.packages:
        raise ValueError(f"shipment {shipment.number} has no packages to label")
    _check_context()
    _register_fonts()
    bar_widths = {package.code: _bar_width(package.code) for package in shipment.packages}
    buffer = BytesIO()
    with force_locale(shipment.locale):
        pdf = Canvas(buffer, pagesize=LABEL_SIZE, pageCompression=1, initialFontName=FONT, initialFontSize=10)
        _describe(pdf, gettext("Package labels of shipment %(number)s", number=shipment.number), shipment)
        for package in shipment.packages:
            _draw_label(pdf, shipment, package, bar_widths[package.code])
            pdf.showPage()
        pdf.save()
    return buffer.getvalue()


def packing_slips_pdf(shipment: ShipmentDoc) -> bytes:
    """A4, one packing slip per order (more pages when its lines need them), in the order of ``shipment.orders``."""
    if not shipment.orders:
        raise ValueError(f"shipment {shipment.number} has no orders to pack")
    _check_context()
    _register_fonts()
    with force_locale(shipment.locale):
        story: list[Flowable] = []
        for position, order in enumerate(shipment.orders):
            if position:
                story.append(PageBreak())
            story.extend(_packing_slip(shipment, order))
        title = gettext("Packing slips of shipment %(number)s", number=shipment.number)
        return _build_a4(story, shipment, title, _slip_footer(shipment))


def handover_act_pdf(shipment: ShipmentDoc) -> bytes:
    """A4: the act the sender and the carrier's courier sign at pickup, listing every package."""
    if not shipment.packages:
        raise ValueError(f"shipment {shipment.number} has no packages to hand over")
    _check_context()
    _register_fonts()
    with force_locale(shipment.locale):
        title = gettext("Handover act for shipment %(number)s of %(date)s", number=shipment.number,
                        date=format_date(shipment.pickup_date, "long"))  # the day it is signed
        story = _handover_act(shipment, title)
        return _build_a4(story, shipment, title, _act_footer(shipment))


# --- shared ------------------------------------------------------------------------------------------------------


def _check_context() -> None:
    # Without an app context force_locale does nothing and every document would silently come out in English.
    if not has_app_context():
        raise RuntimeError("shipping documents are rendered inside a Flask app context (Flask-Babel)")


@functools.cache
def _register_fonts() -> None:
    """DejaVu Sans, embedded: the standard PDF fonts have no Cyrillic."""
    pdfmetrics.registerFont(TTFont(FONT, str(FONTS_DIR / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(FONTS_DIR / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)


@functools.cache
def _style(size: float, bold: bool = False, align: int = 0, color: Any = colors.black) -> ParagraphStyle:
    return ParagraphStyle(f"portal-{size}-{bold}-{align}-{color}", fontName=FONT_BOLD if bold else FONT,
                          fontSize=size, leading=size * 1.25, alignment=align, textColor=color)


def _p(text: str, size: float = 9, bold: bool = False, align: int = 0, color: Any = colors.black) -> Paragraph:
    """A paragraph of plain text: data may hold ``<`` or ``&``, which Paragraph would read as markup.

    Babel's dates hold narrow no-break spaces ("2025\u202fг."), which Paragraph would break a line at;
    a plain no-break space it keeps.
    """
    return Paragraph(escape(text).replace("\u202f", "\u00a0"), _style(size, bold, align, color))


def _kg(grams: int) -> str:
    return format_decimal(Decimal(grams) / 1000, format="#,##0.0##")


def _dimensions(package: PackageDoc) -> str:
    return " × ".join(format_decimal(value) for value in (package.length_mm, package.width_mm, package.height_mm))


def _address_lines(address: Address) -> list[str]:
    place = ", ".join(part for part in (address.city, address.postal_code) if part)
    return [line for line in (address.line1, place, address.country) if line]


def _describe(pdf: Canvas, title: str, shipment: ShipmentDoc) -> None:
    pdf.setTitle(title)
    pdf.setAuthor(shipment.merchant_name)
    pdf.setCreator("portal")


class _PagedCanvas(Canvas):
    """Holds the pages back until the end, so that each footer can say "page 2 of 3".

    ``group`` is the part of the document a page belongs to (a packing slip's order); pages are
    counted within it.
    """

    def __init__(self, *args: Any, footer: Callable[[Canvas, str, int, int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._pages: list[dict[str, Any]] = []
        self.group = ""

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        totals = Counter(page["group"] for page in self._pages)
        seen: Counter[str] = Counter()
        for state in self._pages:
            self.__dict__.update(state)
            seen[self.group] += 1
            self._footer(self, self.group, seen[self.group], totals[self.group])
            super().showPage()
        super().save()


class _Group(Flowable):
    """Takes no room; the pages from here on belong to ``name`` (see ``_PagedCanvas``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        self.canv.group = self.name


def _build_a4(story: list[Flowable], shipment: ShipmentDoc, title: str,
              footer: Callable[[Canvas, str, int, int], None]) -> bytes:
    buffer = BytesIO()
    doc = BaseDocTemplate(buffer, pagesize=A4, leftMargin=A4_MARGIN, rightMargin=A4_MARGIN, topMargin=A4_MARGIN,
                          bottomMargin=A4_MARGIN + 6 * mm, title=title, author=shipment.merchant_name,
                          creator="portal", initialFontName=FONT, initialFontSize=10)
    # No padding in the frame: tables A4_WIDTH wide line up with the paragraphs at the margin.
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, leftPadding=0, rightPadding=0,
                  topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    doc.build(story, canvasmaker=functools.partial(_PagedCanvas, footer=footer))
    return buffer.getvalue()


def _draw_footer(pdf: Canvas, left: str, right: str) -> None:
    pdf.saveState()
    pdf.setFont(FONT, 8)
    pdf.setFillColor(GREY)
    pdf.drawString(A4_MARGIN, A4_MARGIN, left)
    pdf.drawRightString(A4[0] - A4_MARGIN, A4_MARGIN, right)
    pdf.restoreState()


def _label_value_table(rows: Iterable[tuple[str, str]], label_width: float, width: float) -> Table:
    data = [[_p(label, 9, color=GREY), _p(value, 9)] for label, value in rows]
    table = Table(data, colWidths=[label_width, width - label_width], hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return table


# --- labels ------------------------------------------------------------------------------------------------------


def _bar_width(code: str) -> float:
    """The widest bars (up to 0.5 mm) with which the code and its quiet zones fit across the label."""
    if not code or not all(" " <= char <= "~" for char in code):
        raise ValueError(f"package code {code!r} cannot be a Code 128 barcode: printable ASCII only")
    modules = Code128(code, barWidth=1, quiet=0).width
    width = min(BAR_WIDTH_MAX, (LABEL_SIZE[0] - 2 * LABEL_MARGIN) / (modules + 2 * QUIET_MODULES))
    if width < BAR_WIDTH_MIN:
        raise ValueError(f"package code {code!r} is too long for a readable barcode on a 100 mm label")
    return width


def _fill(pdf: Canvas, flowables: list[Flowable], top: float, height: float) -> None:
    """Flowables in a band of the label, shrunk if they would not fit: a label never spills onto a second page."""
    width = LABEL_SIZE[0] - 2 * LABEL_MARGIN
    frame = Frame(LABEL_MARGIN, top - height, width, height, leftPadding=0, rightPadding=0, topPadding=0,
                  bottomPadding=0)
    frame.addFromList([KeepInFrame(width, height, flowables, mode="shrink")], pdf)


def _rule(pdf: Canvas, y: float) -> None:
    pdf.setLineWidth(0.8)
    pdf.line(LABEL_MARGIN, y, LABEL_SIZE[0] - LABEL_MARGIN, y)


def _draw_label(pdf: Canvas, shipment: ShipmentDoc, package: PackageDoc, bar_width: float) -> None:
    page_width, page_height = LABEL_SIZE
    inner = page_width - 2 * LABEL_MARGIN
    top = page_height - LABEL_MARGIN

    # Band 1: who sends it, who carries it and when, which package of its order.
    carrier = [_p(shipment.carrier_name, 12, bold=True),
               _p(gettext("Pickup date") + ": " + format_date(shipment.pickup_date), 8),
               _p(gettext("Sender") + ": " + shipment.merchant_name, 8)]
    count = _p(gettext("Package %(index)s of %(count)s", index=package.index,
                       count=package.of or len(shipment.packages)), 12, bold=True, align=TA_RIGHT)
    header = Table([[carrier, count]], colWidths=[inner * 0.62, inner * 0.38])
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
    _fill(pdf, [header], top, 23 * mm)
    _rule(pdf, top - 24 * mm)

    # Band 2: the barcode, centred, its quiet zones white, and the code readable under it.
    quiet = QUIET_MODULES * bar_width
    barcode = Code128(package.code, barWidth=bar_width, barHeight=BAR_HEIGHT, quiet=1, lquiet=quiet, rquiet=quiet)
    bar_bottom = top - 27 * mm - BAR_HEIGHT
    barcode.drawOn(pdf, (page_width - barcode.width) / 2, bar_bottom)
    pdf.setFont(FONT_BOLD, 14)
    pdf.drawCentredString(page_width / 2, bar_bottom - 6 * mm, package.code)
    _rule(pdf, bar_bottom - 9 * mm)

    # Band 3: the recipient.
    ship_to = package.ship_to
    recipient = [_p(gettext("Recipient"), 8, color=GREY), _p(ship_to.name, 13, bold=True), _p(ship_to.phone, 10)]
    recipient += [_p(line, 10) for line in _address_lines(ship_to)]
    band3_top = bar_bottom - 10 * mm
    _fill(pdf, recipient, band3_top, 42 * mm)
    _rule(pdf, band3_top - 43 * mm)

    # Band 4: what is inside and how big it is.
    rows = [(gettext("Orders"), ", ".join(package.order_numbers)),
            (gettext("Weight"), gettext("%(weight)s kg", weight=_kg(package.weight_grams))),
            (gettext("Dimensions"), gettext("%(dimensions)s mm", dimensions=_dimensions(package)))]
    if package.tracking_number:
        rows.append((gettext("Tracking number"), package.tracking_number))
    band4_top = band3_top - 44 * mm
    _fill(pdf, [_label_value_table(rows, 24 * mm, inner)], band4_top, band4_top - LABEL_MARGIN)


# --- packing slips -----------------------------------------------------------------------------------------------


def _packing_slip(shipment: ShipmentDoc, order: OrderDoc) -> list[Flowable]:
    width = A4_WIDTH
    ship_to = order.ship_to
    meta = _label_value_table([
        (gettext("Order number"), order.order_number),
        (gettext("Ordered"), format_datetime(order.created_at, "short")),
        (gettext("Ship by"), format_datetime(order.ship_by, "short")),
        (gettext("Shipment"), shipment.number),
        (gettext("Carrier"), shipment.carrier_name),
        (gettext("Pickup date"), format_date(shipment.pickup_date)),
        (gettext("Sender"), shipment.merchant_name),
    ], 32 * mm, width / 2)
    recipient = [_p(gettext("Recipient"), 9, color=GREY), _p(ship_to.name, 11, bold=True), _p(ship_to.phone, 9)]
    recipient += [_p(line, 9) for line in _address_lines(ship_to)]
    top = Table([[meta, recipient]], colWidths=[width / 2, width / 2])
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))

    header = [_p(gettext("No."), 8, bold=True), _p(gettext("SKU"), 8, bold=True), _p(gettext("Title"), 8, bold=True),
              _p(gettext("Quantity"), 8, bold=True, align=TA_RIGHT), _p(gettext("Packages"), 8, bold=True)]
    rows: list[list[Any]] = [header]
    for number, line in enumerate(order.lines, start=1):
        codes = order.package_codes(line.sku)
        rows.append([_p(str(number), 9), _p(line.sku, 9), _p(line.title, 9),
                     _p(format_decimal(line.quantity), 9, align=TA_RIGHT), _p(", ".join(codes) or "—", 9)])
    total = sum(line.quantity for line in order.lines)
    rows.append(["", "", _p(gettext("Total quantity"), 9, bold=True), _p(format_decimal(total), 9, bold=True,
                                                                          align=TA_RIGHT), ""])
    lines = LongTable(rows, colWidths=[10 * mm, 36 * mm, width - 107 * mm, 26 * mm, 35 * mm], repeatRows=1)
    lines.setStyle(_grid_style(len(rows)))

    return [_Group(order.order_number),
            _p(gettext("Packing slip for order %(number)s", number=order.order_number), 15, bold=True),
            Spacer(0, 5 * mm), top, Spacer(0, 6 * mm), lines]


def _slip_footer(shipment: ShipmentDoc) -> Callable[[Canvas, str, int, int], None]:
    def footer(pdf: Canvas, order_number: str, page: int, pages: int) -> None:
        _draw_footer(pdf, f"{shipment.merchant_name} · {shipment.number}",
                     gettext("Order %(number)s, page %(page)s of %(pages)s", number=order_number, page=page,
                             pages=pages))
    return footer


def _grid_style(row_count: int) -> TableStyle:
    """Header row on grey, thin grid, the last row (the totals) in bold above a heavier line."""
    return TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), LIGHT),
        ("GRID", (0, 0), (-1, row_count - 2), 0.4, GREY),
        ("LINEABOVE", (0, row_count - 1), (-1, row_count - 1), 1, colors.black),
    ])


# --- handover act ------------------------------------------------------------------------------------------------


def _handover_act(shipment: ShipmentDoc, title: str) -> list[Flowable]:
    width = A4_WIDTH
    total_grams = sum(package.weight_grams for package in shipment.packages)
    count = format_decimal(len(shipment.packages))
    parties = _label_value_table([
        (gettext("Sender"), shipment.merchant_name),
        (gettext("Carrier"), shipment.carrier_name),
        (gettext("Pickup date"), format_date(shipment.pickup_date, "long")),
        (gettext("Packages in total"), count),
        (gettext("Total weight"), gettext("%(weight)s kg", weight=_kg(total_grams))),
    ], 40 * mm, width)

    header = [_p(gettext("No."), 8, bold=True), _p(gettext("Package"), 8, bold=True),
              _p(gettext("Orders"), 8, bold=True), _p(gettext("Tracking number"), 8, bold=True),
              _p(gettext("Weight, kg"), 8, bold=True, align=TA_RIGHT), _p(gettext("Dimensions, mm"), 8, bold=True)]
    rows: list[list[Any]] = [header]
    for number, package in enumerate(shipment.packages, start=1):
        rows.append([_p(str(number), 8), _p(package.code, 8), _p(", ".join(package.order_numbers), 8),
                     _p(package.tracking_number or "—", 8), _p(_kg(package.weight_grams), 8, align=TA_RIGHT),
                     _p(_dimensions(package), 8)])
    rows.append([_p(gettext("Total for the shipment (packages: %(count)s)", count=count), 8, bold=True), "", "", "",
                 _p(_kg(total_grams), 8, bold=True, align=TA_RIGHT), ""])
    table = LongTable(rows, colWidths=[10 * mm, 30 * mm, width - 130 * mm, 38 * mm, 20 * mm, 32 * mm], repeatRows=1)
    style = _grid_style(len(rows))
    style.add("SPAN", (0, len(rows) - 1), (3, len(rows) - 1))
    table.setStyle(style)

    statement = _p(gettext("The sender has handed over and the carrier has accepted the packages listed above: "
                           "%(count)s in total, %(weight)s kg. The packages are accepted by count and weight, "
                           "without checking their contents.", count=count, weight=_kg(total_grams)), 9)
    return [_p(title, 14, bold=True), Spacer(0, 5 * mm), parties, Spacer(0, 6 * mm), table, Spacer(0, 6 * mm),
            KeepTogether([statement, Spacer(0, 8 * mm), _signatures(shipment, width)])]


def _signatures(shipment: ShipmentDoc, width: float) -> Table:
    """Two columns, sender and courier: who they are, then a line each for the name, signature and date."""
    rows: list[list[Any]] = [
        [_p(gettext("Handed over by the sender"), 9, bold=True), "", "",
         _p(gettext("Accepted by the carrier's courier"), 9, bold=True), ""],
        [_p(shipment.merchant_name, 9), "", "", _p(shipment.carrier_name, 9), ""],
    ]
    for label in (gettext("Printed name"), gettext("Signature"), gettext("Date")):
        rows.append([_p(label, 9, color=GREY), "", "", _p(label, 9, color=GREY), ""])
    column = (width - 10 * mm) / 2
    table = Table(rows, colWidths=[28 * mm, column - 28 * mm, 10 * mm, 28 * mm, column - 28 * mm],
                  rowHeights=[None, None, 10 * mm, 10 * mm, 10 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("SPAN", (0, 0), (1, 0)), ("SPAN", (3, 0), (4, 0)),
        ("SPAN", (0, 1), (1, 1)), ("SPAN", (3, 1), (4, 1)),
        ("LINEBELOW", (1, 2), (1, -1), 0.6, colors.black),
        ("LINEBELOW", (4, 2), (4, -1), 0.6, colors.black),
    ]))
    return table


def _act_footer(shipment: ShipmentDoc) -> Callable[[Canvas, str, int, int], None]:
    def footer(pdf: Canvas, group: str, page: int, pages: int) -> None:
        _draw_footer(pdf, gettext("Handover act %(number)s", number=shipment.number),
                     gettext("Page %(page)s of %(pages)s", page=page, pages=pages))
    return footer
