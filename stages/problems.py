"""Problems found in a storyboard or config, reported all at once with file, line and key path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    key_path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key_path}: {self.message}"


class StoryboardInvalid(ValueError):
    """Raised with every problem found; nothing has been rendered or written."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the storyboard:"
        super().__init__("\n".join([head] + [f"  - {p}" for p in self.problems]))
