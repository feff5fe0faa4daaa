"""Taxonomy and requirements files: read whole, or refused with every problem named by its line."""
from __future__ import annotations

import pytest

from portal.category_mapping.exceptions import FileProblems
from portal.category_mapping.taxonomy import parse_requirements, parse_taxonomy
from tests.support.mapping import REQUIREMENTS, SMALL_TAXONOMY


def problems(text: str) -> list[str]:
    with pytest.raises(FileProblems) as caught:
        parse_taxonomy(text)
    return caught.value.problems


def test_google_taxonomy_lines_become_nodes_with_parents_found_by_path():
    nodes = {node.id: node for node in parse_taxonomy(SMALL_TAXONOMY)}
    phones = nodes[267]
    assert (phones.parent_id, phones.name, phones.depth) == (1270, "Mobile Phones", 4)
    assert phones.path == "Electronics > Communications > Telephony > Mobile Phones"
    assert nodes[1].parent_id is None
    order = [node.id for node in parse_taxonomy(SMALL_TAXONOMY)]
    assert order.index(1270) < order.index(267)  # parents first, whatever the file's order


def test_the_shipped_google_taxonomy_reads_whole():
    from portal.category_mapping.services import DEFAULT_TAXONOMY

    nodes = parse_taxonomy(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
    assert len(nodes) == 5595
    assert sum(1 for node in nodes if node.parent_id is None) == 21


def test_a_malformed_line_is_named_with_its_number():
    assert problems("1 - Apparel\nApparel > Shoes\n") == [
        "Line 2: expected “ID - Category > Subcategory”, found “Apparel > Shoes”."]


def test_duplicate_ids_and_paths_are_refused():
    found = problems("1 - Apparel\n1 - Electronics\n2 - Apparel\n")
    assert found == ["Line 2: the id 1 is already used on line 1.",
                     "Line 3: the category “Apparel” is already listed on line 1."]


def test_a_category_whose_parent_is_missing_is_refused():
    assert problems("1 - Apparel\n5 - Apparel > Shoes > Boots\n") == [
        "Line 2: the parent “Apparel > Shoes” of this category is not in the file."]


def test_an_empty_level_is_refused():
    assert problems("1 - Apparel\n2 - Apparel >  > Boots\n")[0].startswith("Line 2: the path")


def test_csv_with_parent_ids_builds_paths():
    nodes = {node.id: node for node in parse_taxonomy("id,parent_id,name\n10,,Дом\n11,10,Кухня\n12,11,Чайники\n")}
    assert nodes[12].path == "Дом > Кухня > Чайники" and nodes[12].depth == 3


def test_csv_cycle_and_unknown_parent_are_refused():
    found = problems("id,parent_id,name\n10,12,A\n11,10,B\n12,11,C\n13,99,D\n")
    assert "Line 5: the parent id 99 is not in the file." in found
    assert any(p.startswith("Line 2: the category is its own ancestor") for p in found)


def test_an_empty_file_is_refused():
    assert problems("# only a comment\n\n") == ["The file holds no categories."]


def test_requirements_read_with_types_units_and_allowed_values():
    requirements = parse_requirements(REQUIREMENTS, {1604, 212, 267, 751})
    color = requirements[0]
    assert (color.category_id, color.code, color.type, color.required) == (1604, "color", "enum", True)
    assert color.allowed_values == ["black", "white", "red", "blue"]
    assert requirements[3].unit == "GB" and requirements[3].allowed_values == []
    assert requirements[2].required is False


@pytest.mark.parametrize(("row", "expected"), [
    ("9999,color,Colour,,enum,,yes,black", "Line 2: the category 9999 is not in the taxonomy."),
    ("1604,color,Colour,,colour,,yes,", "Line 2: the type “colour” is not one of text, number, enum, bool, url."),
    ("1604,color,Colour,,enum,,yes,", "Line 2: an enum attribute needs its allowed values, separated by “|”."),
    ("1604,weight,Weight,,number,g,yes,light|heavy", "Line 2: only enum attributes have allowed values; “weight” is number."),
    ("1604,Цвет,Colour,,text,,yes,", "Line 2: the attribute code “Цвет” must be lowercase letters, digits and underscores, "
                                     "starting with a letter."),
    ("1604,color,Colour,,text,,maybe,", "Line 2: “required” must be yes or no, not “maybe”."),
    ("x,color,Colour,,text,,yes,", "Line 2: the category id “x” is not a number."),
])
def test_a_bad_requirement_row_is_named(row, expected):
    with pytest.raises(FileProblems) as caught:
        parse_requirements("category_id,code,name_en,name_ru,type,unit,required,allowed_values\n" + row + "\n", {1604})
    assert caught.value.problems == [expected]


def test_a_repeated_attribute_and_a_missing_column_are_refused():
    with pytest.raises(FileProblems) as caught:
        parse_requirements("category_id,code,type\n1604,color,text\n1604,color,text\n", {1604})
    assert caught.value.problems == ["Line 3: the attribute “color” of category 1604 is already on line 2."]
    with pytest.raises(FileProblems) as caught:
        parse_requirements("category,code\n1604,color\n", {1604})
    assert "category_id, type" in caught.value.problems[0]


def test_the_demo_requirements_read_against_the_shipped_taxonomy():
    from portal.category_mapping.services import DEFAULT_TAXONOMY, DEMO_REQUIREMENTS

    known = {node.id for node in parse_taxonomy(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))}
    requirements = parse_requirements(DEMO_REQUIREMENTS.read_text(encoding="utf-8"), known)
    assert len({r.category_id for r in requirements}) >= 30
