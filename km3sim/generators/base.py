"""Shared mechanics of the generators that build their can around the detector."""

from __future__ import annotations

from km3sim.errors import StageError
from km3sim.stage import Site, Stage

__all__ = ["CanGenerator"]


class CanGenerator(Stage):
    """A generator whose set-up (``_setup(detector)``, which sets ``self.can``) needs the
    detector: done in ``__init__`` when a detector is given, else on the first chunk.

    Subclasses set ``self.can = None`` and ``self._site_given = site is not None`` in
    ``__init__`` and implement ``_setup``.
    """

    def _require_setup(self, detector=None, site: Site | None = None) -> None:
        if self.can is None:
            if detector is None:
                raise StageError(f"stage {self.name!r} needs a detector to build its can")
            if site is not None and not self._site_given:
                self.site = site
            self._setup(detector)
