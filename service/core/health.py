"""Readiness: whether this server can do its work now (the store answers, the runner runs)."""

from __future__ import annotations

from ..runners import Runner
from ..store import Store


class Health:
    def __init__(self, store: Store, runner: Runner) -> None:
        self.store = store
        self.runner = runner

    def checks(self) -> dict[str, bool]:
        """Each check by name; the server is ready when all hold."""
        try:
            store = self.store.ping()
        except Exception:  # any failure to answer is "not ready", never a 500
            store = False
        return {"store": store, "workers": self.runner.ready}
