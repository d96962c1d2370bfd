"""The mixin of every options dataclass (a leaf module: it imports nothing of omix)."""

from __future__ import annotations

from typing import Any


class FromConfig:
    """Mixin for the options dataclasses: build one from its config section.

    Keys the dataclass does not know are ignored (they belong to other steps); YAML lists
    become tuples so the options stay hashable and frozen.
    """

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Any:
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in cfg.items() if k in fields})
