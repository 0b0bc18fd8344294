"""One test per class of bad input: a clear error naming the file and the problem, a non-zero
exit, no output left behind; or, where the issue says so, a warning in the validation report."""

import contextlib
import hashlib
import io
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from data_helpers import (
    INDEX_OUTPUTS,
    image_bytes,
    index_dataset,
    voc_xml,
    write_image,
    write_pair,
    write_zip,
)
from efficientdet.cli import main
from efficientdet.data import archive as archive_module
from efficientdet.data.annotations import read_frame
from efficientdet.data.images import read_image_info
from efficientdet.errors import UserError

DOG = [("dog", 2, 3, 40, 30)]


def _unpack(archive, output, *extra):
    return main(["unpack", "--archive", str(archive), "--output", str(output), *extra])


def _assert_failed(code, caplog, *fragments):
    assert code == 1
    for fragment in fragments:
        assert fragment in caplog.text, caplog.text


def _assert_nothing_written(folder):
    assert not folder.exists() or list(folder.iterdir()) == []


# --- archives -------------------------------------------------------------------------------


def test_zip_slip_entry(tmp_path, caplog):
    archive = write_zip(tmp_path / "d.zip", {"ok/a.txt": b"a", "ok/../../evil.txt": b"x"})
    code = _unpack(archive, tmp_path / "out" / "voc")
    _assert_failed(code, caplog, "d.zip: entry 'ok/../../evil.txt' escapes the extraction folder")
    _assert_nothing_written(tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["/etc/cron.d/evil", "C:/Windows/evil.dll"])
def test_absolute_path_entry(tmp_path, caplog, name):
    archive = write_zip(tmp_path / "d.zip", {"a.txt": b"a", name: b"x"})
    _assert_failed(
        _unpack(archive, tmp_path / "out" / "voc"), caplog, f"entry '{name}' has an absolute path"
    )
    _assert_nothing_written(tmp_path / "out")


def test_symbolic_link_entry(tmp_path, caplog):
    link = zipfile.ZipInfo("data/passwd.jpg")
    link.external_attr = 0o120777 << 16
    archive = write_zip(tmp_path / "d.zip", {"data/a.jpg": b"a", link: b"/etc/passwd"})
    _assert_failed(
        _unpack(archive, tmp_path / "out" / "voc"),
        caplog,
        "entry 'data/passwd.jpg' is a symbolic link; links are refused",
    )
    _assert_nothing_written(tmp_path / "out")


def test_oversized_archive(tmp_path, caplog):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        zip_file.writestr("zeros.bin", bytes(2_000_000))
    assert archive.stat().st_size < 10_000
    code = _unpack(archive, tmp_path / "out" / "voc", "--max_gb", "0.001")
    _assert_failed(
        code, caplog, "bomb.zip: oversized archive, more than 1000000 bytes uncompressed"
    )
    _assert_nothing_written(tmp_path / "out")


def test_corrupt_zip_through_the_command_line(tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    result = run_cli("unpack", "--archive", archive, "--output", tmp_path / "voc", check=False)
    assert result.returncode == 1
    assert "broken.zip: corrupt or not a zip archive" in result.stderr
    assert not (tmp_path / "voc").exists()


def test_zip_with_a_damaged_member(tmp_path, caplog):
    archive = write_zip(tmp_path / "d.zip", {"a.jpg": image_bytes(), "b.jpg": image_bytes(seed=1)})
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF  # inside a.jpg's stored bytes: its CRC no longer matches
    archive.write_bytes(bytes(data))
    _assert_failed(_unpack(archive, tmp_path / "out" / "voc"), caplog, "d.zip: corrupt")
    _assert_nothing_written(tmp_path / "out")


# --- annotations ----------------------------------------------------------------------------


def _dataset_with_xml(tmp_path, xml, size=(64, 48)):
    voc = tmp_path / "voc"
    write_image(voc / "img.jpg", *size)
    write_pair(voc, "good", DOG)
    (voc / "img.xml").write_bytes(xml)
    return voc


def _index_fails(tmp_path, caplog, voc, *fragments, extra=()):
    out = tmp_path / "out"
    _assert_failed(index_dataset(voc, out, *extra), caplog, *fragments)
    _assert_nothing_written(out)


def _index_warns(tmp_path, voc, *warnings, extra=()):
    out = tmp_path / "out"
    assert index_dataset(voc, out, *extra) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(INDEX_OUTPUTS)
    report = (out / "report.txt").read_text()
    for warning in warnings:
        assert warning in report, report
    return read_frame(out / "annotations.csv")


def test_entity_expansion(tmp_path, caplog):
    xml = (
        b'<!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
        b"<annotation><object><name>&y;</name></object></annotation>"
    )
    _index_fails(
        tmp_path,
        caplog,
        _dataset_with_xml(tmp_path, xml),
        "img.xml: refused: the XML declares or uses entities",
    )


def test_external_entity(tmp_path, caplog):
    xml = b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation>&x;</annotation>'
    _index_fails(
        tmp_path,
        caplog,
        _dataset_with_xml(tmp_path, xml),
        "img.xml: refused: the XML declares or uses entities",
    )
    assert "root:" not in caplog.text


def test_xml_that_is_not_voc(tmp_path, caplog):
    xml = b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>"
    _index_fails(
        tmp_path, caplog, _dataset_with_xml(tmp_path, xml), "img.xml: not a PASCAL VOC annotation"
    )


def test_missing_size_uses_the_real_one(tmp_path):
    table = _index_warns(
        tmp_path,
        _dataset_with_xml(tmp_path, voc_xml(DOG, size=None), (80, 60)),
        "img.xml: no valid <size>; using the image's 80x60",
    )
    assert table.loc[table["image"] == "img.jpg", ["width", "height"]].values.tolist() == [[80, 60]]


def test_size_disagreeing_with_the_image(tmp_path):
    table = _index_warns(
        tmp_path,
        _dataset_with_xml(tmp_path, voc_xml(DOG, size=(500, 375)), (80, 60)),
        "img.xml: <size> 500x375 differs from the image's 80x60; using the image's",
    )
    assert table.loc[table["image"] == "img.jpg", ["width", "height"]].values.tolist() == [[80, 60]]


def test_box_outside_the_image_is_clipped(tmp_path):
    table = _index_warns(
        tmp_path,
        _dataset_with_xml(tmp_path, voc_xml([("dog", -3, 5, 70, 20)])),
        "img.xml: box 1 (dog) reaches outside the 64x48 image (-3,5,70,20); clipped",
    )
    assert table.loc[table["image"] == "img.jpg", ["xmin", "xmax"]].values.tolist() == [[0, 64]]


def test_inverted_box(tmp_path, caplog):
    _index_fails(
        tmp_path,
        caplog,
        _dataset_with_xml(tmp_path, voc_xml([("dog", 30, 5, 10, 20)])),
        "img.xml: box 1 (dog) is inverted: xmin 30, ymin 5, xmax 10, ymax 20",
    )


def test_zero_area_box_is_dropped(tmp_path):
    xml = voc_xml([("dog", 10, 5, 10, 20), ("cat", 1, 1, 9, 9)])
    table = _index_warns(
        tmp_path, _dataset_with_xml(tmp_path, xml), "img.xml: box 1 (dog) has zero area; dropped"
    )
    assert table.loc[table["image"] == "img.jpg", "class"].tolist() == ["cat"]


def test_fractional_coordinates_are_accepted(tmp_path):
    table = _index_warns(
        tmp_path, _dataset_with_xml(tmp_path, voc_xml([("dog", 1.25, 2.5, 30.75, 40.125)]))
    )
    row = table.loc[table["image"] == "img.jpg", ["xmin", "ymin", "xmax", "ymax"]]
    assert row.values.tolist() == [[1.25, 2.5, 30.75, 40.125]]


def test_unknown_class_with_a_given_label_map(tmp_path, caplog):
    voc = _dataset_with_xml(tmp_path, voc_xml([("horse", 1, 1, 9, 9)]))
    _index_fails(
        tmp_path,
        caplog,
        voc,
        "classes not in the given label map",
        "'horse' in img.xml",
        extra=("--label_map", "{1: dog}"),
    )


def test_xml_without_its_image_lists_them_all(tmp_path, caplog):
    voc = tmp_path / "voc"
    write_pair(voc, "good", DOG)
    for stem in ("lost1", "lost2"):
        (voc / f"{stem}.xml").write_bytes(voc_xml(DOG, filename="good.jpg"))
    _index_fails(
        tmp_path,
        caplog,
        voc,
        "2 annotation file(s) without an image of the same stem",
        "lost1.xml",
        "lost2.xml",
    )


def test_image_without_xml_is_a_negative_example(tmp_path):
    voc = tmp_path / "voc"
    write_pair(voc, "good", DOG)
    write_image(voc / "background.png")
    table = _index_warns(
        tmp_path, voc, "1 image(s) without objects kept as negative examples: background.png"
    )
    assert table.loc[table["image"] == "background.png", "class"].tolist() == [""]


@pytest.mark.parametrize("damage", ["truncated", "cut_in_half", "no_scan", "not_an_image"])
def test_truncated_or_undecodable_image(tmp_path, caplog, damage):
    voc = tmp_path / "voc"
    write_pair(voc, "good", DOG)
    image, _ = write_pair(voc, "bad", DOG, size=(200, 150))
    data = image.read_bytes()
    damaged = {
        "truncated": data[: len(data) - 50],
        "cut_in_half": data[: len(data) // 2],
        "no_scan": data[: data.index(b"\xff\xda")] + b"\xff\xd9",
        "not_an_image": b"GIF89a garbage",
    }
    image.write_bytes(damaged[damage])
    _index_fails(
        tmp_path,
        caplog,
        voc,
        "bad.jpg: cannot decode the image (truncated, corrupt or not an image)",
    )


@pytest.mark.parametrize(
    "kind", ["progressive", "restart_markers", "padded_after_the_end", "exif_thumbnail"]
)
def test_complete_jpegs_of_every_kind_pass_with_their_decoded_size(tmp_path, kind):
    """JPEGs are judged from their headers and end marker: none of these may be refused."""
    pixels = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    options = {
        "progressive": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
        "restart_markers": [cv2.IMWRITE_JPEG_RST_INTERVAL, 1],
    }.get(kind, [])
    data = cv2.imencode(".jpg", pixels, options)[1].tobytes()
    if kind == "padded_after_the_end":
        data += b"\0" * 300
    if kind == "exif_thumbnail":  # a whole JPEG, end marker included, inside the APP1 segment
        buffer = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 1
        thumbnail = cv2.imencode(".jpg", pixels[:8, :8])[1].tobytes()
        Image.fromarray(pixels).save(buffer, "JPEG", exif=exif.tobytes() + thumbnail)
        data = buffer.getvalue()
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    info = read_image_info(path)
    assert (info.width, info.height, info.color) == (70, 45, "color")
    if kind == "exif_thumbnail":
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(UserError, match="photo.jpg: cannot decode the image"):
            read_image_info(path)


@pytest.mark.parametrize("mode, color", [("L", "grayscale"), ("CMYK", "CMYK")])
def test_grayscale_and_cmyk_jpegs_are_kept_with_a_warning(tmp_path, mode, color):
    voc = tmp_path / "voc"
    write_pair(voc, "good", DOG)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).convert(mode).save(buffer, "JPEG")
    (voc / "odd.jpg").write_bytes(buffer.getvalue())
    (voc / "odd.xml").write_bytes(voc_xml(DOG))
    table = _index_warns(
        tmp_path, voc, f"odd.jpg: {color} JPEG, kept as is (decoders expand it to RGB)"
    )
    assert table.loc[table["image"] == "odd.jpg", "format"].tolist() == ["jpeg"]


def test_exif_rotated_photo_is_kept_with_a_warning(tmp_path):
    voc = tmp_path / "voc"
    write_pair(voc, "good", DOG)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown rotated by 90 degrees
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG", exif=exif.tobytes())
    (voc / "phone.jpg").write_bytes(buffer.getvalue())
    (voc / "phone.xml").write_bytes(voc_xml(DOG, size=(48, 64)))
    table = _index_warns(
        tmp_path,
        voc,
        "phone.jpg: EXIF orientation 6; records keep the stored pixels",
        "phone.xml: <size> 48x64 differs from the image's 64x48",
    )
    assert table.loc[table["image"] == "phone.jpg", ["width", "height"]].values.tolist() == [
        [64, 48]
    ]


def test_empty_dataset(tmp_path, caplog):
    voc = tmp_path / "voc"
    (voc / "docs").mkdir(parents=True)
    (voc / "docs" / "README.txt").write_text("nothing here")
    _index_fails(tmp_path, caplog, voc, "voc: empty dataset, no image files found")


# --- sources --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://example.org/voc.zip", "javascript:alert(1)"])
def test_unsupported_url_scheme(tmp_path, caplog, url):
    code = main(["download", "--source", url, "--output", str(tmp_path / "d.zip")])
    _assert_failed(code, caplog, f"{url}: unsupported URL scheme")
    assert list(tmp_path.iterdir()) == []


def test_sha256_mismatch(tmp_path, caplog):
    source = write_zip(tmp_path / "source.zip", {"a.txt": b"a"})
    wrong = hashlib.sha256(b"something else").hexdigest()
    code = main(
        [
            "download",
            "--source",
            str(source),
            "--sha256",
            wrong,
            "--output",
            str(tmp_path / "out" / "d.zip"),
        ]
    )
    _assert_failed(code, caplog, "source.zip: sha256 mismatch", f"expected {wrong}")
    _assert_nothing_written(tmp_path / "out")


# --- tar archives and several archives ------------------------------------------------------


def _tar(path, *members, mode="w"):
    """A tar of (TarInfo or name, bytes) members."""
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            if isinstance(info, str):
                info = tarfile.TarInfo(info)
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "member, message",
    [
        ("ok/../../evil.txt", "entry 'ok/../../evil.txt' escapes the extraction folder"),
        ("/etc/cron.d/evil", "entry '/etc/cron.d/evil' has an absolute path"),
        (
            _member("data/passwd.jpg", tarfile.SYMTYPE, "/etc/passwd"),
            "entry 'data/passwd.jpg' is a link (to '/etc/passwd'); links are refused",
        ),
        (
            _member("data/hard.jpg", tarfile.LNKTYPE, "data/a.jpg"),
            "entry 'data/hard.jpg' is a link (to 'data/a.jpg'); links are refused",
        ),
        (_member("data/null", tarfile.CHRTYPE), "entry 'data/null' is a device or pipe"),
        (_member("data/disk", tarfile.BLKTYPE), "entry 'data/disk' is a device or pipe"),
        (_member("data/fifo", tarfile.FIFOTYPE), "entry 'data/fifo' is a device or pipe"),
    ],
)
def test_unsafe_tar_members(tmp_path, caplog, member, message):
    archive = _tar(tmp_path / "d.tar.gz", ("data/a.jpg", b"a"), (member, b"x"), mode="w:gz")
    _assert_failed(_unpack(archive, tmp_path / "out" / "voc"), caplog, f"d.tar.gz: {message}")
    _assert_nothing_written(tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name, mode", [("d.tar", "w"), ("d.tgz", "w:gz"), ("d.tar.xz", "w:xz")])
def test_truncated_tar(tmp_path, caplog, name, mode):
    data = image_bytes(200, 200, ".png")
    archive = _tar(tmp_path / name, ("data/a.png", data), ("data/b.png", data), mode=mode)
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    _assert_failed(
        _unpack(archive, tmp_path / "out" / "voc"), caplog, f"{name}: corrupt, truncated"
    )
    _assert_nothing_written(tmp_path / "out")


def test_gzip_with_damaged_data_is_caught_by_its_checksum(tmp_path, caplog):
    archive = _tar(
        tmp_path / "d.tar.gz", ("data/a.png", image_bytes(200, 200, ".png")), mode="w:gz"
    )
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    _assert_failed(_unpack(archive, tmp_path / "out" / "voc"), caplog, "d.tar.gz: corrupt")
    _assert_nothing_written(tmp_path / "out")


def test_oversized_tar_counts_every_archive(tmp_path, caplog):
    first = _tar(tmp_path / "a.tar", ("a/zeros.bin", bytes(600_000)))
    second = _tar(tmp_path / "b.tar.gz", ("b/zeros.bin", bytes(600_000)), mode="w:gz")
    code = _unpack(first, tmp_path / "out" / "voc", "--max_gb", "0.001")
    assert code == 0
    code = main(
        [
            "unpack",
            "--archive",
            str(first),
            str(second),
            "--output",
            str(tmp_path / "out2" / "voc"),
            "--max_gb",
            "0.001",
        ]
    )
    _assert_failed(code, caplog, "b.tar.gz: oversized archive, more than 1000000 bytes")
    _assert_nothing_written(tmp_path / "out2")


def test_archives_side_by_side_share_folders_but_not_files(tmp_path, caplog):
    first = _tar(tmp_path / "trainval.tar", ("VOC/JPEGImages/a.jpg", b"a"), ("VOC/same.txt", b"s"))
    second = write_zip(tmp_path / "test.zip", {"VOC/JPEGImages/b.jpg": b"b", "VOC/same.txt": b"s"})
    assert (
        main(["unpack", "--archive", str(first), str(second), "--output", str(tmp_path / "voc")])
        == 0
    )
    assert sorted(
        p.relative_to(tmp_path / "voc").as_posix()
        for p in (tmp_path / "voc").rglob("*")
        if p.is_file()
    ) == ["VOC/JPEGImages/a.jpg", "VOC/JPEGImages/b.jpg", "VOC/same.txt"]

    third = _tar(tmp_path / "other.tar", ("VOC/JPEGImages/a.jpg", b"another a"))
    code = main(["unpack", "--archive", str(first), str(third), "--output", str(tmp_path / "out")])
    _assert_failed(
        code,
        caplog,
        "other.tar: entry 'VOC/JPEGImages/a.jpg' conflicts with the "
        "different VOC/JPEGImages/a.jpg unpacked from trainval.tar",
    )
    assert not (tmp_path / "out").exists()


@pytest.fixture
def processes_used(monkeypatch):
    """Zips of more than 10 entries unpacked by several processes; the list of pool sizes used."""
    sizes = []
    pool = archive_module.concurrent.futures.ProcessPoolExecutor

    def counted(processes):
        sizes.append(processes)
        return pool(processes)

    monkeypatch.setattr(archive_module, "_ENTRIES_PER_PROCESS", 10)
    monkeypatch.setattr(archive_module.concurrent.futures, "ProcessPoolExecutor", counted)
    return sizes


def _many_files(count):
    return {
        f"VOC/JPEGImages/{index:04d}.jpg": bytes([index % 251]) * index for index in range(count)
    }


def test_a_zip_unpacked_by_several_processes_is_exact(tmp_path, processes_used):
    entries = _many_files(60)
    archive = write_zip(tmp_path / "d.zip", entries)
    assert _unpack(archive, tmp_path / "voc", "--threads", "3") == 0
    assert processes_used == [3]
    written = {
        p.relative_to(tmp_path / "voc").as_posix(): p.read_bytes()
        for p in (tmp_path / "voc").rglob("*")
        if p.is_file()
    }
    assert written == entries


@pytest.mark.parametrize(
    "last, message",
    [
        (
            ("VOC/JPEGImages/0000.jpg", b"other"),
            "entry 'VOC/JPEGImages/0000.jpg' conflicts with the different VOC/JPEGImages/0000.jpg "
            "unpacked from d.zip",
        ),
        (("VOC/JPEGImages/0001.jpg/x.xml", b"x"), "clashes as file and folder"),
    ],
    ids=["same name twice", "file and folder"],
)
def test_clashes_across_the_processes_of_one_zip(tmp_path, caplog, processes_used, last, message):
    name, data = last
    entries = {**_many_files(60), zipfile.ZipInfo(name): data}
    with pytest.warns(UserWarning) if name in entries else contextlib.nullcontext():
        archive = write_zip(tmp_path / "d.zip", entries)
    _assert_failed(_unpack(archive, tmp_path / "out" / "voc", "--threads", "2"), caplog, message)
    assert processes_used == [2]
    _assert_nothing_written(tmp_path / "out")


def test_not_an_archive(tmp_path, caplog):
    archive = tmp_path / "notes.tar"
    archive.write_bytes(b"just some text, neither zip nor tar" * 20)
    _assert_failed(
        _unpack(archive, tmp_path / "out" / "voc"),
        caplog,
        "notes.tar: corrupt, truncated or not a zip or tar archive",
    )
    _assert_nothing_written(tmp_path / "out")
