"""A results file that a long run fills piece by piece and an interrupted run resumes.

The evaluation CLIs run for hours; each finished piece (a variant, a chunk of seeds, a latency
point, a command schedule) is written at once, and a rerun skips what the file already holds
for the same settings.
"""

from __future__ import annotations

from pathlib import Path

from diffuser_ros.evaluation.report import read_json, write_json


class ResultsFile:
    """``data``: the JSON object, in sections of entries by key (``data[section][key]``).

    ``settings``: those of the whole run; a file written with other settings starts afresh as
    ``{"settings": settings}``. ``sections`` are there (empty) from the start.
    """

    def __init__(self, path: str | Path, settings: dict | None = None,
                 sections: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        self.data = read_json(self.path)
        if settings is not None and self.data.get("settings") != settings:
            self.data = {"settings": settings}
        for section in sections:
            self.data.setdefault(section, {})

    def entry(self, section: str, key: str, settings: dict | None = None) -> dict | None:
        """The stored entry; None when there is none, or (``settings`` given) when it was
        made with other settings (its own ``"settings"``)."""
        entry = self.data.get(section, {}).get(key)
        if entry is None or (settings is not None and entry.get("settings") != settings):
            return None
        return entry

    def put(self, section: str, key: str, entry: dict) -> None:
        """Store ``entry`` and write the file."""
        self.data.setdefault(section, {})[key] = entry
        self.save()

    def drop(self, section: str, key: str) -> None:
        """Forget an entry, and its section once empty (written at the next save)."""
        entries = self.data.get(section, {})
        entries.pop(key, None)
        if not entries:
            self.data.pop(section, None)

    def save(self) -> None:
        write_json(self.path, self.data)
