"""Label maps {id: class name}, ids positive ints from 1; results/{dataset}/label_map.yaml."""

import yaml

from efficientdet.errors import UserError


def parse_label_map(mapping, source):
    """Validates a {id: name} mapping (ids may come as strings, e.g. from JSON)."""
    if not isinstance(mapping, dict) or not mapping:
        raise UserError(f"{source}: label map must be a non-empty mapping of id to class name")
    label_map = {}
    for key, name in mapping.items():
        try:
            label_id = int(key)
        except (TypeError, ValueError):
            label_id = 0
        if label_id < 1 or str(label_id) != str(key).strip():
            raise UserError(f"{source}: label map id {key!r} is not a positive integer")
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{source}: label map id {key} has no class name")
        label_map[label_id] = name.strip()
    names = list(label_map.values())
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise UserError(f"{source}: label map names {duplicated} appear more than once")
    return dict(sorted(label_map.items()))


def discover_label_map(class_names):
    """Classes sorted by name, ids from 1."""
    return {label_id: name for label_id, name in enumerate(sorted(class_names), start=1)}


def read_label_map(path):
    with open(path, encoding="utf-8") as stream:
        try:
            mapping = yaml.safe_load(stream)
        except yaml.YAMLError as error:
            raise UserError(f"{path}: not valid YAML ({error})") from None
    return parse_label_map(mapping, path)


def write_label_map(path, label_map):
    with open(path, "w", encoding="utf-8") as stream:
        yaml.safe_dump(dict(sorted(label_map.items())), stream, allow_unicode=True, sort_keys=False)
