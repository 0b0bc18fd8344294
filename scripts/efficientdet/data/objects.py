"""One annotated object, shared by the VOC parser and the annotation table (no lxml needed)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class VocObject:
    """One box in pixels, as written in the annotation (VOC corner coordinates)."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: int = 0
    truncated: int = 0
