"""Reads what `snakemake --report report.zip` put into its report."""

import json
import re
import zipfile


def report_categories(path):
    """{category: {subcategory: [result paths]}} of a report zip."""
    with zipfile.ZipFile(path) as archive:
        html = archive.read(next(n for n in archive.namelist() if n.endswith("report.html")))
    match = re.search(r"var categories = (\{.*\});\s*$", html.decode(), re.MULTILINE)
    assert match, f"{path}: no categories in report.html"
    return json.loads(match.group(1))


def reported_files(categories, category):
    return {path for paths in categories.get(category, {}).values() for path in paths}
