"""Problems found in a storyboard or config, reported all at once with file, line and key path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


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

    def __init__(self, problems: list[Problem], config_problems: Sequence[str] = ()):
        self.problems = list(problems)
        # Problems of the config and command line found beside the storyboard's, so one run
        # lists everything to fix (flows.pipeline.prepare).
        self.config_problems = list(config_problems)
        lines = [_head(len(self.problems), "the storyboard")]
        lines += [f"  - {p}" for p in self.problems]
        if self.config_problems:
            lines.append(_head(len(self.config_problems), "the config and command line"))
            lines += [f"  - {p}" for p in self.config_problems]
        super().__init__("\n".join(lines))

    def with_config_problems(self, config_problems: Sequence[str]) -> "StoryboardInvalid":
        return StoryboardInvalid(self.problems, [*self.config_problems, *config_problems])


def _head(count: int, where: str) -> str:
    return f"{count} problem{'s' if count != 1 else ''} in {where}:"
