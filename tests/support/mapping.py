"""A small taxonomy for tests, loaded through the real service, and merchant categories made from products."""
from __future__ import annotations

from flask import Flask

from portal.category_mapping import services
from portal.db import get_session

SMALL_TAXONOMY = """# Google_Product_Taxonomy_Version: test
1 - Apparel & Accessories
1604 - Apparel & Accessories > Clothing
212 - Apparel & Accessories > Clothing > Shirts & Tops
204 - Apparel & Accessories > Clothing > Pants
187 - Apparel & Accessories > Shoes
222 - Electronics
267 - Electronics > Communications > Telephony > Mobile Phones
262 - Electronics > Communications
1270 - Electronics > Communications > Telephony
4745 - Electronics > Computers > Tablet Computers
278 - Electronics > Computers
536 - Home & Garden
638 - Home & Garden > Kitchen & Dining
730 - Home & Garden > Kitchen & Dining > Kitchen Appliances
751 - Home & Garden > Kitchen & Dining > Kitchen Appliances > Electric Kettles
736 - Home & Garden > Kitchen & Dining > Kitchen Appliances > Coffee Makers & Espresso Machines
"""

REQUIREMENTS = """category_id,code,name_en,name_ru,type,unit,required,allowed_values
1604,color,Colour,Цвет,enum,,yes,black|white|red|blue
1604,size,Size,Размер,enum,,yes,xs|s|m|l|xl
212,sleeve,Sleeve,Рукав,enum,,no,short|long
267,memory_gb,Memory,Память,number,GB,yes,
751,volume_l,Volume,Объём,number,l,yes,
"""


def load_taxonomy(app: Flask, text: str = SMALL_TAXONOMY, requirements: str | None = None) -> None:
    with app.app_context():
        db = get_session()
        services.import_taxonomy(db, text)
        if requirements:
            services.load_requirements(db, requirements)
