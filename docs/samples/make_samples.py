"""Regenerate the demo catalog files in this folder, byte for byte: ``python docs/samples/make_samples.py``."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import xlsxwriter

HERE = Path(__file__).resolve().parent
CDN = "https://cdn.example.com/img"

# (sku stem, Russian title, English title, category path, colour, material, base price)
PRODUCTS = [
    ("TS", "Футболка мужская базовая", "Men's basic T-shirt", "Одежда > Футболки", "белый", "хлопок", 1299),
    ("TW", "Футболка женская оверсайз", "Women's oversized T-shirt", "Одежда > Футболки", "чёрный", "хлопок", 1499),
    ("HD", "Худи с капюшоном", "Hooded sweatshirt", "Одежда > Толстовки", "серый", "хлопок, полиэстер", 3490),
    ("SW", "Свитер вязаный", "Knitted sweater", "Одежда > Свитеры", "бежевый", "шерсть", 4290),
    ("JN", "Джинсы прямые", "Straight-leg jeans", "Одежда > Джинсы", "синий", "деним", 3990),
    ("CP", "Кепка бейсболка", "Baseball cap", "Аксессуары > Головные уборы", "красный", "хлопок", 890),
    ("SC", "Шарф клетчатый", "Checked scarf", "Аксессуары > Шарфы", "зелёный", "акрил", 1190),
    ("MG", "Кружка керамическая 350 мл", "Ceramic mug, 350 ml", "Дом > Посуда", "белый", "керамика", 450),
    ("PL", "Тарелка обеденная", "Dinner plate", "Дом > Посуда", "голубой", "фарфор", 620),
    ("TL", "Полотенце банное", "Bath towel", "Дом > Текстиль", "бирюзовый", "махра", 990),
    ("CB", "Кабель USB-C 1 м", "USB-C cable, 1 m", "Электроника > Кабели", "чёрный", "ПВХ", 390),
    ("PB", "Внешний аккумулятор 10000 мА·ч", "Power bank 10,000 mAh", "Электроника > Аккумуляторы", "чёрный",
     "пластик", 1990),
]
SIZES = ["S", "M", "L", "XL"]
BRANDS = ["Ромашка", "Northwind", "Лесная тропа", "Contoso"]


def gtin13(n: int) -> str:
    """A valid EAN-13 in the Russian 460 range: twelve digits plus the GS1 check digit."""
    body = f"460701234{n:03d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def wrong_check_digit(gtin: str) -> str:
    return gtin[:-1] + str((int(gtin[-1]) + 1) % 10)


def clean_rows() -> list[list[str]]:
    rows = [["sku", "title", "price", "currency", "stock", "gtin", "brand", "category", "description", "images",
             "color", "size"]]
    for n in range(30):
        stem, title_ru, title_en, category, colour, material, price = PRODUCTS[n % len(PRODUCTS)]
        sku = f"{stem}-{n + 1:03d}"
        title = title_ru if n % 3 else title_en
        images = ";".join(f"{CDN}/{sku.lower()}-{i}.jpg" for i in range(1, 2 + n % 3))
        description = f"{title_ru}. Материал: {material}, цвет: {colour}. Подходит для повседневной носки, " \
                      f"бережная стирка при 30 °C." if category.startswith("Одежда") else \
                      f"{title_ru}. Материал: {material}; гарантия 12 месяцев."
        rows.append([sku, title, f"{price + n * 10}.00", "RUB", str((n * 7) % 40), gtin13(n + 1),
                     BRANDS[n % len(BRANDS)], category, description, images, colour,
                     SIZES[n % 4] if category.startswith("Одежда") else ""])
    return rows


def messy_rows() -> list[list[str]]:
    """A 1C/Excel export: a title line, Russian headers, prices and barcodes in every shape, some bad rows."""
    header = ["Артикул", "Наименование", "Цена", "Остаток", "Штрихкод", "Бренд", "Категория", "Описание", "Фото",
              "Цвет", "Материал"]
    rows = [["Прайс-лист ООО «Ромашка» на 01.11.2026"] + [""] * 10, header]
    for n in range(34):
        stem, title_ru, _, category, colour, material, price = PRODUCTS[n % len(PRODUCTS)]
        price_text = price_in_many_shapes(price + n * 10, n)
        gtin = gtin13(100 + n)
        if n % 9 == 3:
            gtin = f"{gtin}.0"                    # a number cell written back with a decimal part: recoverable
        if n % 4 == 1:
            gtin = "0" + gtin if not gtin.endswith(".0") else gtin   # GTIN-14 with its leading zero kept
        sku = f"{n + 120:05d}" if n % 2 else f"{stem}-{n + 1:03d}"  # 00121: leading zeros must survive
        urls = [f"{CDN}/{sku.lower()}-{i}.jpg" for i in range(1, 3)]
        photo = [";".join(urls), " ".join(urls), "\n".join(urls), urls[0]][n % 4]
        description = f"{title_ru} «{BRANDS[n % len(BRANDS)]}»; материал — {material}."
        if n % 6 == 2:
            description += '\nУход: ручная стирка. Размер "на вырост".'
        rows.append([sku, title_ru, price_text, str((n * 5) % 25), gtin, BRANDS[n % len(BRANDS)], category,
                     description, photo, colour, material])
    # Scientific notation from a spreadsheet: the last digit is gone for good (the second in Russian Excel style).
    rows[12][4] = scientific(gtin13(110), ".")
    rows[20][4] = scientific(gtin13(118), ",")
    bad = [
        ["", "Носки спортивные", "290,00", "40", gtin13(200), "Ромашка", "Одежда > Носки", "Без артикула", "", "белый",
         "хлопок"],
        [rows[3][0], "Футболка мужская базовая (дубль)", "1 299,00", "3", gtin13(201), "Ромашка", "Одежда > Футболки",
         "Повтор артикула из строки выше", "", "белый", "хлопок"],
        ["NEG-001", "Плед флисовый", "-150,00", "2", gtin13(202), "Contoso", "Дом > Текстиль", "Цена меньше нуля", "",
         "серый", "флис"],
        ["STK-001", "Подушка декоративная", "790,00", "много", gtin13(203), "Contoso", "Дом > Текстиль",
         "Остаток словами", "", "жёлтый", "полиэстер"],
        ["EAN-001", "Стакан стеклянный", "190,00", "12", wrong_check_digit(gtin13(204)), "Northwind", "Дом > Посуда",
         "Неверная контрольная цифра штрихкода", f"{CDN}/ean-001.jpg", "прозрачный", "стекло"],
        ["FTP-001", "Термос 0,5 л", "1 590,00", "6", gtin13(205), "Northwind", "Дом > Посуда",
         "Фото по FTP-ссылке", "ftp://files.example.com/termos.jpg", "стальной", "нержавеющая сталь"],
    ]
    return rows + bad


def price_in_many_shapes(value: int, n: int) -> str:
    """1 299,00 / 1299.00 руб. / 1299.00 р. / 1299 / 1,299.00 in turn, as merchants type them."""
    shapes = [f"{value:,.2f}".replace(",", " ").replace(".", ","), f"{value}.00 руб.", f"{value:.2f} р.", str(value),
              f"{value:,.2f}"]
    return shapes[n % len(shapes)]


def scientific(gtin: str, decimal_mark: str) -> str:
    """How Excel shows a 13-digit number in a narrow column: 12 digits survive, the check digit does not."""
    return f"{gtin[0]}{decimal_mark}{gtin[1:12]}E+12"


def write_csv(path: Path, rows: list[list[str]], *, encoding: str, delimiter: str, newline: str) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def write_xlsx(path: Path) -> None:
    """Title and blank row above the header, mixed-language headers, numbers as numbers (GTINs too)."""
    book = xlsxwriter.Workbook(str(path), {"strings_to_urls": False})
    book.set_properties({"title": "Прайс-лист", "author": "ООО «Ромашка»", "created": datetime(2026, 11, 1, 9, 0)})
    sheet = book.add_worksheet("Прайс")
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": "# ##0.00"})
    sheet.merge_range("A1:H1", "Прайс-лист ООО «Ромашка» на 01.11.2026", book.add_format({"bold": True,
                                                                                          "font_size": 14}))
    sheet.write_row(2, 0, ["Артикул", "Name", "Price", "Stock", "EAN", "Brand", "Категория", "Images"], bold)
    for n in range(40):
        stem, title_ru, title_en, category, _, _, price = PRODUCTS[n % len(PRODUCTS)]
        row = 3 + n
        sheet.write_string(row, 0, f"{n + 40:05d}" if n % 3 == 0 else f"{stem}-{n + 201:03d}")
        sheet.write_string(row, 1, title_en if n % 2 else title_ru)
        sheet.write_number(row, 2, price + n * 5 + (0.5 if n % 4 == 0 else 0), money)
        sheet.write_number(row, 3, (n * 3) % 17)
        sheet.write_number(row, 4, int(gtin13(300 + n)))
        sheet.write_string(row, 5, BRANDS[n % len(BRANDS)])
        sheet.write_string(row, 6, category)
        sheet.write_string(row, 7, " ".join(f"{CDN}/x{n + 1}-{i}.jpg" for i in range(1, 1 + n % 3 + 1)))
    sheet.set_column(0, 0, 12)
    sheet.set_column(1, 1, 36)
    sheet.set_column(6, 7, 40)
    book.close()


def write_feed(path: Path) -> None:
    """A clean YML feed: a category tree, offers with params (one with a unit), pictures and a barcode each."""
    categories = [("1", None, "Одежда"), ("2", "1", "Футболки"), ("3", "1", "Толстовки"), ("4", "1", "Свитеры"),
                  ("5", None, "Дом"), ("6", "5", "Посуда"), ("7", "5", "Текстиль"), ("8", None, "Электроника")]
    category_of = {"Одежда > Футболки": "2", "Одежда > Толстовки": "3", "Одежда > Свитеры": "4",
                   "Одежда > Джинсы": "1", "Аксессуары > Головные уборы": "1", "Аксессуары > Шарфы": "1",
                   "Дом > Посуда": "6", "Дом > Текстиль": "7", "Электроника > Кабели": "8",
                   "Электроника > Аккумуляторы": "8"}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE yml_catalog SYSTEM "shops.dtd">',
             '<yml_catalog date="2026-11-01T09:00:00+03:00">', "  <shop>", "    <name>Ромашка</name>",
             "    <company>ООО «Ромашка»</company>", "    <url>https://shop.example.com/</url>",
             '    <currencies>', '      <currency id="RUB" rate="1"/>', "    </currencies>", "    <categories>"]
    for cid, parent, name in categories:
        parent_attr = f" parentId={quoteattr(parent)}" if parent else ""
        lines.append(f"      <category id={quoteattr(cid)}{parent_attr}>{escape(name)}</category>")
    lines += ["    </categories>", "    <offers>"]
    for n in range(30):
        stem, title_ru, _, category, colour, material, price = PRODUCTS[n % len(PRODUCTS)]
        sku = f"{stem}-{n + 501:03d}"
        lines.append(f'      <offer id="{n + 1001}" available="{"true" if n % 7 else "false"}">')
        lines.append(f"        <name>{escape(title_ru)}</name>")
        lines.append(f"        <vendor>{escape(BRANDS[n % len(BRANDS)])}</vendor>")
        lines.append(f"        <vendorCode>{sku}</vendorCode>")
        lines.append(f"        <price>{price + n * 10}</price>")
        if n % 5 == 0:
            lines.append(f"        <oldprice>{price + n * 10 + 500}</oldprice>")
        lines.append("        <currencyId>RUB</currencyId>")
        lines.append(f"        <categoryId>{category_of[category]}</categoryId>")
        for i in range(1, 2 + n % 3):
            lines.append(f"        <picture>{CDN}/{sku.lower()}-{i}.jpg</picture>")
        lines.append(f"        <description><![CDATA[<p>{escape(title_ru)}. Материал: {escape(material)}.</p>]]>"
                     "</description>")
        lines.append(f"        <barcode>{gtin13(500 + n)}</barcode>")
        lines.append(f'        <param name="Цвет">{escape(colour)}</param>')
        if category.startswith("Одежда"):
            lines.append(f'        <param name="Размер">{SIZES[n % 4]}</param>')
        lines.append(f'        <param name="Материал">{escape(material)}</param>')
        if category.startswith("Дом"):
            lines.append(f'        <param name="Вес" unit="г">{200 + n * 15}</param>')
        lines.append(f"        <count>{(n * 3) % 20}</count>")
        lines.append("      </offer>")
    lines += ["    </offers>", "  </shop>", "</yml_catalog>", ""]
    path.write_bytes("\n".join(lines).encode("utf-8"))


def main() -> None:
    write_csv(HERE / "catalog-clean.csv", clean_rows(), encoding="utf-8", delimiter=",", newline="\n")
    # Excel's "CSV (разделители — точка с запятой)": Windows-1251, CRLF line ends.
    write_csv(HERE / "catalog-messy-cp1251.csv", messy_rows(), encoding="cp1251", delimiter=";", newline="\r\n")
    write_xlsx(HERE / "catalog.xlsx")
    write_feed(HERE / "feed.yml")


if __name__ == "__main__":
    main()
