"""Shipping documents read back the way a warehouse would: barcodes scanned from a 200 dpi render, text extracted."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask

from portal.shipping.documents import (
    Address,
    LineDoc,
    OrderDoc,
    PackageDoc,
    ShipmentDoc,
    handover_act_pdf,
    labels_pdf,
    packing_slips_pdf,
)

INSTALL = ("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
           "poppler-utils zbar-tools")
CREATED = datetime(2025, 3, 11, 9, 30, tzinfo=timezone.utc)

ANNA = Address(name="Анна Смирнова", phone="+7 917 555-12-34", country="Россия", city="Казань",
               postal_code="420111", line1="ул. Баумана, д. 5, кв. 12")
IVAN = Address(name="Иван Петров", phone="+7 912 400-00-01", country="Россия", city="Екатеринбург",
               postal_code="620014", line1="пр. Ленина, д. 24/8, кв. 3")
TITLES = ("Чайник электрический", "Кофемолка ручная", "Фильтр для воды")


def need(*tools: str) -> None:
    """The tests read PDFs with Debian's poppler-utils and zbar-tools: CI must have them, a laptop may not."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not found (Debian's poppler-utils, zbar-tools): {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def flat(text: str) -> str:
    """Extracted text as one line of words: where the layout wrapped a line does not matter to the tests."""
    return " ".join(text.split())  # split() also takes the locale's no-break spaces


def pages_text(pdf: bytes, tmp_path: Path) -> list[str]:
    need("pdftotext")
    path = tmp_path / "text.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return [flat(page) for page in out.split("\f")[:-1]]  # every page ends with a form feed


def page_barcodes(pdf: bytes, tmp_path: Path) -> list[list[str]]:
    """Each page rendered at 200 dpi and scanned for Code 128 only; the codes found on each page."""
    need("pdftoppm", "zbarimg")
    path = tmp_path / "labels.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(path), str(tmp_path / "page")], check=True)
    found = []
    for image in sorted(tmp_path.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        scan = subprocess.run(["zbarimg", "--raw", "-q", "-Sdisable", "-Scode128.enable", str(image)],
                              capture_output=True, text=True)
        assert scan.returncode in (0, 4), scan.stderr  # 4: nothing found on the image
        found.append(scan.stdout.split())
    return found


def package(index: int, ship_to: Address = ANNA, orders: tuple[str, ...] = ("100-2001",),
            tracking: str | None = "auto", title: str = TITLES[0]) -> PackageDoc:
    return PackageDoc(
        code=f"PKG-{index:06d}", index=index, weight_grams=1000 + index * 250, length_mm=400, width_mm=300,
        height_mm=200 + index, tracking_number=f"CDEK{1000000000 + index}" if tracking == "auto" else tracking,
        ship_to=ship_to, order_numbers=orders,
        lines=tuple(LineDoc(order_number=number, sku=f"SKU-{index}", title=title, quantity=1) for number in orders),
    )


def order(number: str, ship_to: Address, lines: tuple[LineDoc, ...],
          packages_of_line: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> OrderDoc:
    return OrderDoc(order_number=number, created_at=CREATED - timedelta(days=1), ship_by=CREATED + timedelta(days=2),
                    ship_to=ship_to, lines=lines, packages_of_line=packages_of_line)


def shipment(packages: tuple[PackageDoc, ...], orders: tuple[OrderDoc, ...] = (), locale: str = "ru") -> ShipmentDoc:
    return ShipmentDoc(number="SHP-000042", merchant_name="ТехноМир", carrier_name="СДЭК",
                       pickup_date=date(2025, 3, 12), created_at=CREATED, packages=packages, orders=orders,
                       locale=locale)


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def three_packages() -> tuple[PackageDoc, ...]:
    return (package(1, ANNA, ("100-2001",)), package(2, ANNA, ("100-2001", "100-2002")),
            package(3, IVAN, ("100-2003",), tracking=None))


def test_each_label_carries_its_package_code_as_one_decodable_code128(ctx, tmp_path):
    packages = three_packages()

    found = page_barcodes(labels_pdf(shipment(packages)), tmp_path)

    assert found == [[p.code] for p in packages]


def test_a_label_shows_recipient_orders_weight_and_which_package_it_is(ctx, tmp_path):
    packages = three_packages()

    pages = pages_text(labels_pdf(shipment(packages)), tmp_path)

    assert len(pages) == 3
    first, second, third = pages
    # pdftotext gives the Cyrillic back only when the embedded font maps its glyphs to Unicode.
    for text in ("Анна Смирнова", "+7 917 555-12-34", "ул. Баумана, д. 5, кв. 12", "Казань, 420111", "Россия",
                 "PKG-000001", "100-2001", "1,25 кг", "400 × 300 × 201 мм", "CDEK1000000001", "СДЭК", "ТехноМир",
                 "Место 1 из 3", "Получатель", "12 мар. 2025 г."):
        assert text in first, text
    assert "100-2001, 100-2002" in second and "Место 2 из 3" in second and "1,5 кг" in second
    assert "Иван Петров" in third and "Екатеринбург" in third and "Место 3 из 3" in third
    assert "Трек-номер" not in third  # no tracking number yet: no empty field


def test_labels_are_in_english_when_the_shipment_is(ctx, tmp_path):
    pages = pages_text(labels_pdf(shipment(three_packages(), locale="en")), tmp_path)

    assert "Package 1 of 3" in pages[0] and "1.25 kg" in pages[0] and "Recipient" in pages[0]
    assert "Анна Смирнова" in pages[0]  # the data stays as it is


def test_a_shipment_without_packages_has_no_labels(ctx):
    with pytest.raises(ValueError, match="SHP-000042 has no packages"):
        labels_pdf(shipment(()))


def test_a_package_code_a_scanner_could_not_read_is_refused(ctx):
    with pytest.raises(ValueError, match="too long"):
        labels_pdf(shipment((replace(package(1), code="PKG-" + "X" * 30),)))


def test_a_long_code_gets_thinner_bars_that_still_scan(ctx, tmp_path):
    longest = replace(package(1), code="PKG-ABCDEFGHIJ1")  # fifteen characters: 0.4 mm bars across the label

    assert page_barcodes(labels_pdf(shipment((longest,))), tmp_path) == [["PKG-ABCDEFGHIJ1"]]


def sixty_packages() -> tuple[PackageDoc, ...]:
    return tuple(package(i, ANNA if i % 2 else IVAN, (f"100-{3000 + i // 2}",)) for i in range(1, 61))


@pytest.mark.parametrize("locale, words, page_of", [
    ("ru", ("Акт приёма-передачи отгрузки SHP-000042 от 12 марта 2025 г.", "Отправитель", "Служба доставки",
            "Сдал (отправитель)", "Принял (курьер службы доставки)", "ФИО", "Подпись", "Дата", "Всего мест 60"),
     "Стр. {} из {}"),
    ("en", ("Handover act for shipment SHP-000042 of March 12, 2025", "Sender", "Carrier",
            "Handed over by the sender", "Accepted by the carrier's courier", "Printed name", "Signature", "Date",
            "Packages in total 60"), "Page {} of {}"),
])
def test_the_handover_act_lists_every_package_over_several_pages(ctx, tmp_path, locale, words, page_of):
    packages = sixty_packages()

    pages = pages_text(handover_act_pdf(shipment(packages, locale=locale)), tmp_path)
    text = "\n".join(pages)

    assert len(pages) >= 2
    for p in packages:
        assert len(re.findall(rf"\b{p.code}\b", text)) == 1, p.code
        assert p.tracking_number in text
    for word in words:
        assert word in text, word
    assert all(page_of.format(n, len(pages)) in page for n, page in enumerate(pages, start=1))
    # the table's header comes back on every page it continues onto
    heading = "Трек-номер" if locale == "ru" else "Tracking number"
    assert all(heading in page for page in pages[:-1])


def test_the_handover_act_totals_weight_and_count(ctx, tmp_path):
    packages = three_packages()  # 1,25 + 1,5 + 1,75 kg

    text = "\n".join(pages_text(handover_act_pdf(shipment(packages)), tmp_path))

    assert "Общий вес 4,5 кг" in text
    assert "всего 3, 4,5 кг" in text
    assert "—" in text  # the third package has no tracking number yet
    assert "Итого по отгрузке (мест: 3) 4,5" in text


def slip_orders() -> tuple[OrderDoc, ...]:
    small = order("100-2001", ANNA, (
        LineDoc("100-2001", "KT-1001", "Чайник электрический", 2),
        LineDoc("100-2001", "CM-0042", "Кофемолка ручная", 1),
    ), (("KT-1001", ("PKG-000001", "PKG-000002")), ("CM-0042", ("PKG-000002",))))
    long = order("100-2003", IVAN, tuple(LineDoc("100-2003", f"FL-{i:04d}", f"Фильтр для воды, картридж №{i}", i)
                                        for i in range(1, 81)),
                 tuple((f"FL-{i:04d}", ("PKG-000003",)) for i in range(1, 81)))
    return small, long


def test_packing_slips_give_each_order_its_pages_with_every_line(ctx, tmp_path):
    small, long = slip_orders()

    pages = pages_text(packing_slips_pdf(shipment(three_packages(), (small, long))), tmp_path)

    assert len(pages) >= 3  # the long order takes more than one page
    assert "Упаковочный лист к заказу 100-2001" in pages[0] and "Заказ 100-2001, стр. 1 из 1" in pages[0]
    for text in ("KT-1001", "Чайник электрический", "PKG-000001, PKG-000002", "CM-0042", "Кофемолка ручная",
                 "Анна Смирнова", "Казань", "Артикул", "Количество", "Итого, шт. 3", "ТехноМир"):
        assert text in pages[0], text
    rest = "\n".join(pages[1:])
    assert "Упаковочный лист к заказу 100-2003" in pages[1] and "Иван Петров" in pages[1]
    for i in range(1, 81):
        assert f"FL-{i:04d}" in rest and f"Фильтр для воды, картридж №{i}" in rest
    count = len(pages) - 1
    assert all(f"Заказ 100-2003, стр. {n} из {count}" in pages[n] for n in range(1, count + 1))
    assert all("Артикул" in page for page in pages[1:])  # the lines' header repeats


def test_a_line_in_no_package_says_so_instead_of_leaving_a_blank(ctx, tmp_path):
    lone = order("100-2009", ANNA, (LineDoc("100-2009", "KT-1001", "Чайник электрический", 1),))

    text = pages_text(packing_slips_pdf(shipment((package(1),), (lone,), locale="en")), tmp_path)[0]

    assert "Packing slip for order 100-2009" in text and "KT-1001" in text and "—" in text


def test_the_dejavu_fonts_are_embedded_in_every_document(ctx, tmp_path):
    need("pdffonts")
    documents = {"labels": labels_pdf, "slips": packing_slips_pdf, "act": handover_act_pdf}
    data = shipment(three_packages(), slip_orders())
    for name, render in documents.items():
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(render(data))
        listing = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
        embedded, declared = set(), set()
        for line in listing.splitlines()[2:]:
            font = re.match(r"(?:[A-Z]{6}\+)?(\S+)\s.*\s(yes|no)\s+(?:yes|no)\s+(?:yes|no)\s+\d+\s+\d+\s*$", line)
            assert font, line
            (embedded if font.group(2) == "yes" else declared).add(font.group(1))
        assert embedded == {"DejaVuSans", "DejaVuSans-Bold"}, name
        # reportlab names Helvetica in every PDF's resources; no text of ours is set in it.
        assert declared <= {"Helvetica"}, name


def test_markup_characters_and_long_texts_print_as_written(ctx, tmp_path):
    title = 'Набор <b>кастрюль</b> & "сковородок" ' + "с антипригарным покрытием " * 12
    address = Address(name="Константинопольская-Щедрина Александра Валентиновна " * 2, phone="+7 900 000-00-00",
                      country="Россия", city="Санкт-Петербург", postal_code="190000",
                      line1="Набережная реки Фонтанки, д. 10, литера А, корпус 2, подъезд 3, этаж 4, кв. 5 " * 3)
    box = package(1, address, tuple(f"100-{4000 + i}" for i in range(40)), title=title)
    slip = order("100-4000", address, (LineDoc("100-4000", "POT-<1>&2", title, 1),), (("POT-<1>&2", (box.code,)),))
    data = shipment((box,), (slip,))

    labels = labels_pdf(data)
    slips = pages_text(packing_slips_pdf(data), tmp_path)
    act = "\n".join(pages_text(handover_act_pdf(data), tmp_path))

    label_pages = pages_text(labels, tmp_path)
    assert len(label_pages) == 1  # shrunk to fit, not spilled onto a second page
    assert page_barcodes(labels, tmp_path) == [["PKG-000001"]]
    assert "POT-<1>&2" in slips[0]
    assert "Набор <b>кастрюль</b> &" in slips[0] and '"сковородок"' in slips[0]
    assert "100-4039" in act


def test_only_english_and_russian_documents_exist():
    with pytest.raises(ValueError, match="'de'"):
        shipment((package(1),), locale="de")


def test_documents_need_an_app_context_to_be_translated():
    with pytest.raises(RuntimeError, match="app context"):
        labels_pdf(shipment((package(1),)))
