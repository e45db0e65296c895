"""Store labels (``zone=a,rack=r1``): where a store stands, for placement by PD.

One syntax for every place labels are written (``kvdb store --labels``, its TOML key, the
playground), checked before anything starts so a typo fails at once instead of misplacing
replicas for good.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
"""A label key or value: letters, digits and ``_.-`` inside (as Kubernetes label values)."""


def check_name(text: str, what: str, flag: str) -> str:
    if not _NAME.fullmatch(text):
        raise ValueError(f"{flag}: {what} {text!r} must be letters, digits, '_', '.' or '-' "
                         "(starting and ending with a letter or digit)")
    return text


def parse_labels(spec: str, flag: str = "--labels") -> dict[str, str]:
    """``"zone=a,rack=r1"`` -> {"zone": "a", "rack": "r1"}; ``""`` -> {}. Each key at most once."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag}: '{item}' is not KEY=VALUE")
        key, value = check_name(key.strip(), "key", flag), check_name(value.strip(), "value", flag)
        if key in labels:
            raise ValueError(f"{flag}: label '{key}' is given twice")
        labels[key] = value
    return labels


def format_labels(labels: dict[str, str]) -> str:
    """The inverse of ``parse_labels``: ``zone=a,rack=r1``."""
    return ",".join(f"{key}={value}" for key, value in labels.items())
