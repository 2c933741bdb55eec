"""Where datasets live on disk, and the error raised when they are not there."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

DATA_DIR_ENV_VAR = "CRMN_VIZ_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing (and were not, or could not be, downloaded).

    The message says which paths were searched and how to make the data available.
    """

    def __init__(self, dataset_name: str, searched: Iterable[Path | str], hint: str = "") -> None:
        self.dataset_name = dataset_name
        self.searched = [Path(path) for path in searched]
        looked_in = "\n".join(f"  - {path}" for path in self.searched)
        advice = (
            f"Point the app at a folder holding the data: pass data_dir=... (or --data-dir), "
            f"or set the environment variable {DATA_DIR_ENV_VAR}; or pass download=True "
            f"to fetch it with torchvision (needs internet)."
        )
        message = f"Dataset {dataset_name!r} not found. Looked in:\n{looked_in}\n{advice}"
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data root: ``data_dir`` if given, else ``$CRMN_VIZ_DATA_DIR``, else ``./data``.

    The path is expanded (``~``) but not required to exist.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_environment = os.environ.get(DATA_DIR_ENV_VAR)
    if from_environment:
        return Path(from_environment).expanduser()
    return DEFAULT_DATA_DIR
