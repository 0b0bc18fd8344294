"""The two sides of a benchmark against google/automl: where the original is, and the
environment that runs this checkout beside it."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def original_available():
    """True when AUTOML_DIR and AUTOML_PY (../shared/tools/automl-baseline/) are set; else says
    that the original's figures are skipped."""
    if os.environ.get("AUTOML_DIR") and os.environ.get("AUTOML_PY"):
        return True
    print(
        "google/automl not set up (AUTOML_DIR / AUTOML_PY unset; see "
        "../shared/tools/automl-baseline/): the original's figure is skipped"
    )
    return False


def project_environment():
    """os.environ for this checkout's commands: its package and venv first, Keras 3 (env.sh's
    legacy-Keras switch is the original's)."""
    environment = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "scripts"),
    }
    environment.pop("TF_USE_LEGACY_KERAS", None)
    return environment
