"""The models a running service answers with, kept in step with the registry aliases.

A background thread checks `champion` and `challenger` every `reload_s` seconds and
swaps in a newly loaded model only when its version changed. A request picks its model
once, at its start, so a swap never fails or mixes an in-flight request.
"""

from __future__ import annotations

import logging
import random
import threading

from automl_tasks.core.settings import Workspace
from automl_tasks.core.tracking import mlflow_client
from automl_tasks.families.aliases import CHALLENGER, CHAMPION, current_alias_version
from serving.loader import ServedModel
from serving.models import load_model

log = logging.getLogger(__name__)


class LiveModels:
    """champion (+ challenger when a canary share is set), refreshed from the registry."""

    def __init__(self, ws: Workspace, family: str, *, canary_share: float = 0.0, reload_s: float = 5.0) -> None:
        self.ws, self.family, self.canary_share, self.reload_s = ws, family, canary_share, reload_s
        self.champion: ServedModel = load_model(ws, family, CHAMPION)
        self.challenger: ServedModel | None = None
        self._random = random.Random()
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="loopml-registry-watch")
        self._thread.start()

    def pick(self) -> tuple[ServedModel, str]:
        """(model, variant) for one request."""
        challenger = self.challenger
        if challenger is not None and self._random.random() < self.canary_share:
            return challenger, CHALLENGER
        return self.champion, CHAMPION

    def refresh(self) -> None:
        """Load whatever the aliases point at now, if it differs from what is served."""
        client = mlflow_client(self.ws)
        champion = current_alias_version(client, self.family, CHAMPION)
        if champion and champion != self.champion.version:
            log.info("champion of %s moved: v%s -> v%s", self.family, self.champion.version, champion)
            self.champion = load_model(self.ws, self.family, CHAMPION)
        if self.canary_share <= 0:
            return
        challenger = current_alias_version(client, self.family, CHALLENGER)
        if challenger is None:
            self.challenger = None
        elif self.challenger is None or challenger != self.challenger.version:
            self.challenger = load_model(self.ws, self.family, CHALLENGER)

    def _loop(self) -> None:
        while not self._stop.wait(self.reload_s):
            try:
                self.refresh()
            except Exception as exc:  # keep serving what we have
                log.warning("registry check for %s failed: %s", self.family, exc)

    def close(self) -> None:
        self._stop.set()
