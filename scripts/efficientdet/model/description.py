"""What a detector is (variant config, number of classes, label map) and where that is written.

A training run records it in models/{run}/model.yaml; an export in its metadata.json; for an
official checkpoint the user names the variant and the label map.
"""

import dataclasses

import yaml

from efficientdet.config import EfficientDetConfig, get_config
from efficientdet.data.label_map import parse_label_map, read_label_map
from efficientdet.errors import UserError
from efficientdet.layout import run_of_checkpoint


@dataclasses.dataclass(frozen=True)
class ModelDescription:
    config: EfficientDetConfig
    num_classes: int
    label_map: dict  # {label id: class name}

    def as_dict(self):
        """The JSON/YAML form: model_name, image_size, num_classes, label_map, config."""
        return {
            "model_name": self.config.name,
            "image_size": list(self.config.image_size),
            "num_classes": self.num_classes,
            "label_map": {str(label_id): name for label_id, name in self.label_map.items()},
            "config": yaml_ready(self.config.as_dict()),
        }


def from_dict(recorded, source):
    """The inverse of ModelDescription.as_dict (also reads a run's model.yaml)."""
    try:
        label_map = parse_label_map(recorded["label_map"], source)
        config_values = {
            key: _tuples(value)
            for key, value in (recorded.get("config") or {}).items()
            if key != "name"
        }
        config = get_config(recorded["model_name"], **config_values)
        num_classes = int(recorded.get("num_classes") or max(label_map))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{source}: not a model description ({error!r})") from None
    check_label_map(label_map, num_classes, source)
    return ModelDescription(config, num_classes, label_map)


def run_description(checkpoint):
    """The recorded description of the run that wrote `checkpoint`
    (models/{run}/model.yaml for models/{run}/checkpoints/ckpt-N), or None for other checkpoints.
    """
    run = run_of_checkpoint(checkpoint)
    if run is None or not run.description.is_file():
        return None
    return from_dict(yaml.safe_load(run.description.read_text()) or {}, run.description)


def describe_checkpoint(checkpoint, model_name=None, image_size=None, label_map_path=None):
    """A checkpoint's model: from its run's model.yaml, else from the given name and label map.

    A label map given for a run's checkpoint must be the run's.
    """
    given_map = read_label_map(label_map_path) if label_map_path else None
    description = run_description(checkpoint)
    if description is not None:
        if given_map is not None and given_map != description.label_map:
            raise UserError(
                f"{label_map_path}: label map does not match the model's "
                f"({checkpoint}): {describe_difference(description.label_map, given_map)}"
            )
        if model_name and model_name != description.config.name:
            raise UserError(
                f"{checkpoint}: is a checkpoint of {description.config.name}, not {model_name}"
            )
        return description
    if not model_name or given_map is None:
        raise UserError(
            f"{checkpoint}: not a checkpoint of a training run (no model.yaml); "
            "give the variant (--model_name) and the label map (--label_map)"
        )
    config = get_config(model_name, image_size=image_size)
    return ModelDescription(config, max(given_map), given_map)


def check_label_map(label_map, num_classes, source):
    """A model predicting `num_classes` classes needs label ids 1..num_classes at most."""
    if max(label_map) > num_classes:
        raise UserError(
            f"{source}: label map has id {max(label_map)} but the model predicts "
            f"{num_classes} classes"
        )


def describe_difference(expected, found):
    differences = [
        f"id {label_id}: {expected.get(label_id)!r} vs {found.get(label_id)!r}"
        for label_id in sorted(set(expected) | set(found))
        if expected.get(label_id) != found.get(label_id)
    ]
    return "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")


def yaml_ready(value):
    """Tuples to lists, recursively, for YAML and JSON."""
    if isinstance(value, dict):
        return {key: yaml_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [yaml_ready(item) for item in value]
    return value


def _tuples(value):
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value
