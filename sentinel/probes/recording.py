"""JSON-lines recordings of samples: one `to_record` object per line.

A recording is how an incident is shared, replayed and backtested. Reading
never stops at a bad line: it is reported with its line number and skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from sentinel.vocabulary.samples import RecordError, Sample, from_record, to_record

OnBadLine = Callable[[int, str], None]
"""Called with (line number, problem) for every line that is not a valid sample."""
MAX_LINE_CHARS = 1 << 20
"""Longest line read (1 MiB; a sample is a few hundred bytes): longer is a bad line."""


def bounded_lines(fh: IO[str], limit: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str | None]]:
    """(line number, line) of a text file, holding at most ``limit`` characters of a line
    in memory; a longer line comes as None (its rest is skipped)."""
    lineno = 0
    while line := fh.readline(limit + 1):
        lineno += 1
        if len(line) <= limit or line.endswith("\n"):
            yield lineno, line
            continue
        while (rest := fh.readline(limit)) and not rest.endswith("\n"):
            pass
        yield lineno, None


def iter_recording(path: str | Path, on_bad_line: OnBadLine | None = None) -> Iterator[Sample]:
    """Samples of a recording, in file order; bad lines go to ``on_bad_line``."""
    with Path(path).open(encoding="utf-8") as fh:
        yield from iter_lines(fh, on_bad_line)


def iter_lines(lines: IO[str], on_bad_line: OnBadLine | None = None) -> Iterator[Sample]:
    for lineno, line in bounded_lines(lines):
        if line is None:
            if on_bad_line is not None:
                on_bad_line(lineno, f"line longer than {MAX_LINE_CHARS} characters")
            continue
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise RecordError("a record must be a JSON object")
            yield from_record(data)
        except RecursionError:
            if on_bad_line is not None:
                on_bad_line(lineno, "JSON nested too deeply")
        except ValueError as exc:  # bad JSON, a bad record, an integer of 5,000 digits
            if on_bad_line is not None:
                on_bad_line(lineno, str(exc))


class RecordingWriter:
    """Appends samples as JSON lines, flushed per line so a crash loses at most one."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh
        self.count = 0

    def write(self, sample: Sample) -> None:
        self._fh.write(json.dumps(to_record(sample), separators=(",", ":")) + "\n")
        self._fh.flush()
        self.count += 1
