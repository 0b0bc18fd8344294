"""Parsing and validating VOC annotation files, and label maps."""

import time

import pytest

from data_helpers import voc_xml
from efficientdet.data.label_map import discover_label_map, parse_label_map
from efficientdet.data.objects import VocObject
from efficientdet.data.voc import VocAnnotation, parse_annotation, validate
from efficientdet.errors import UserError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE annotation [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><object><name>&lol9;</name>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>
"""


def _write(tmp_path, data, name="a.xml"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_parses_objects_flags_and_fractional_coordinates(tmp_path):
    path = _write(tmp_path, voc_xml([("dog", 1.5, 2, 30.25, 40, 1), ("cat", 0, 0, 64, 48)]))
    annotation = parse_annotation(path)
    assert annotation.size == (64, 48)
    assert annotation.objects == (
        VocObject("dog", 1.5, 2.0, 30.25, 40.0, difficult=1, truncated=0),
        VocObject("cat", 0.0, 0.0, 64.0, 48.0),
    )


def test_billion_laughs_is_refused_quickly(tmp_path):
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"a.xml: refused: the XML declares or uses entities"):
        parse_annotation(_write(tmp_path, BILLION_LAUGHS))
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file://{secret}">]>',
        '<!DOCTYPE annotation [<!ENTITY % remote SYSTEM "file://{secret}"> %remote;]>',
        '<!DOCTYPE annotation SYSTEM "file://{secret}">',
    ],
    ids=["external-entity", "parameter-entity", "external-dtd"],
)
def test_external_entities_and_dtds_are_refused_without_reading_them(tmp_path, doctype):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = (
        b"<annotation><object><name>&secret;</name></object></annotation>"
        if "ENTITY secret" in doctype
        else b"<annotation/>"
    )
    path = _write(tmp_path, doctype.format(secret=secret).encode() + body)
    with pytest.raises(UserError, match="a.xml: refused") as error:
        parse_annotation(path)
    assert "TOP-SECRET" not in str(error.value)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<html><body/></html>", r"not a PASCAL VOC annotation \(root element <html>"),
        (b"<annotation><object>", r"not well-formed XML"),
        (b"<annotation><object><bndbox/></object></annotation>", r"object 1 has no <name>"),
        (
            b"<annotation><object><name>dog</name></object></annotation>",
            r"object 1 \(dog\) has no <bndbox>",
        ),
        (voc_xml([("dog", "ten", 1, 5, 5)]), r"object 1 has <xmin> 'ten', not a number"),
        (voc_xml([("dog", 1, 1, "nan", 5)]), r"object 1 has <xmax> 'nan', not a finite number"),
        (voc_xml([("dog", 1, 1, 5, 5, "maybe")]), r"object 1 has <difficult> 'maybe'"),
    ],
)
def test_malformed_annotations_name_file_and_problem(tmp_path, data, message):
    with pytest.raises(UserError, match=r"a.xml: " + message):
        parse_annotation(_write(tmp_path, data))


def test_missing_or_broken_size_is_read_as_unknown(tmp_path):
    assert parse_annotation(_write(tmp_path, voc_xml([], size=None))).size is None
    broken = b"<annotation><size><width>x</width><height>2</height></size></annotation>"
    assert parse_annotation(_write(tmp_path, broken)).size is None


def _annotation(*boxes, size=(100, 80)):
    return VocAnnotation(size, tuple(VocObject("dog", *box) for box in boxes))


def test_validate_keeps_good_boxes_without_warnings():
    kept, warnings = validate(_annotation((0, 0, 100, 80), (10.5, 20, 30.5, 40)), 100, 80, "a.xml")
    assert [(b.xmin, b.ymax) for b in kept] == [(0, 80), (10.5, 40)]
    assert warnings == []


def test_validate_uses_the_real_size_and_warns():
    kept, warnings = validate(_annotation((10, 10, 90, 70), size=(80, 100)), 100, 80, "a.xml")
    assert len(kept) == 1
    assert warnings == ["a.xml: <size> 80x100 differs from the image's 100x80; using the image's"]
    _, warnings = validate(_annotation(size=None), 100, 80, "a.xml")
    assert warnings == ["a.xml: no valid <size>; using the image's 100x80"]


def test_validate_clips_boxes_outside_and_drops_zero_area():
    kept, warnings = validate(
        _annotation((-5, 10, 120, 90), (20, 20, 20, 50), (150, 10, 160, 20)), 100, 80, "a.xml"
    )
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in kept] == [(0, 10, 100, 80)]
    assert warnings == [
        "a.xml: box 1 (dog) reaches outside the 100x80 image (-5,10,120,90); clipped",
        "a.xml: box 2 (dog) has zero area; dropped",
        "a.xml: box 3 (dog) reaches outside the 100x80 image (150,10,160,20); clipped",
        "a.xml: box 3 (dog) has zero area; dropped",
    ]


def test_validate_rejects_inverted_boxes():
    with pytest.raises(
        UserError, match=r"a.xml: box 2 \(dog\) is inverted: xmin 50, ymin 10, xmax 40"
    ):
        validate(_annotation((1, 1, 5, 5), (50, 10, 40, 20)), 100, 80, "a.xml")


def test_label_maps():
    assert parse_label_map({"2": "b", 1: "a"}, "cfg") == {1: "a", 2: "b"}
    assert discover_label_map({"zebra", "ant"}) == {1: "ant", 2: "zebra"}
    for bad, message in [
        ({0: "a"}, "id 0 is not a positive"),
        ({"x": "a"}, "id 'x'"),
        ({1: "a", 2: "a"}, r"names \['a'\] appear more than once"),
        ({1: ""}, "id 1 has no class name"),
        ({}, "non-empty mapping"),
    ]:
        with pytest.raises(UserError, match=f"cfg: .*{message}"):
            parse_label_map(bad, "cfg")
