"""Find the bundled resources (icons, stylesheet) in an installed wheel or a source checkout."""

from __future__ import annotations

from pathlib import Path

#: A file every resources folder holds; it tells the real folder from an unrelated ``resources`` directory.
_MARKER = "style.qss"


def _candidates() -> list[Path]:
    package = Path(__file__).resolve().parent
    # The wheel force-includes <repo>/resources as crm_desktop/resources; a checkout keeps it next to the package.
    return [package / "resources", package.parent / "resources"]


def resources_dir() -> Path:
    """The folder holding ``style.qss`` and ``icons/``.

    Raises:
        FileNotFoundError: when neither an installed nor a source-checkout resources folder exists.
    """
    for candidate in _candidates():
        if (candidate / _MARKER).is_file():
            return candidate
    searched = ", ".join(str(c) for c in _candidates())
    raise FileNotFoundError(f"CRM Desktop's resources folder is missing (looked in {searched}); reinstall the app")


def resource_file(*parts: str) -> Path:
    """A file inside the resources folder, e.g. ``resource_file("icons", "crm-desktop.svg")``.

    Raises:
        FileNotFoundError: when the file does not exist.
    """
    path = resources_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"CRM Desktop resource {'/'.join(parts)} is missing from {path.parent}")
    return path
