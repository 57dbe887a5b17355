"""`sentinel replay FILE --detector NAME`: backtest detectors on recorded history."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import pydantic
import yaml

from sentinel.base.errors import InputError
from sentinel.base.yamlsource import InvalidFile
from sentinel.cli.config_load import add_config_arg
from sentinel.config import load_config
from sentinel.detect.backtest import Episode, run, run_values
from sentinel.detect.generic import MetricDetector
from sentinel.detect.series import FIELDS, SAMPLE_FOR, SERIES_SLOWDOWN_C
from sentinel.detect.settings import DetectorSettings
from sentinel.detect.suite import DETECTOR_NAMES, DetectorSuite
from sentinel.probes.recording import MAX_LINE_CHARS, bounded_lines, iter_recording
from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.samples import TS_RANGE, Sample

SECTIONS = (*DETECTOR_NAMES, "generic")
"""Detectors a replay can run (and name in --set): the suite's and the generic one."""
GENERIC_FIELD = "any numeric series (rises, drops, level shifts, variance, flat lines)"
_EPOCH_RANGE = TS_RANGE
"""Year 1 to 9999 (UTC): timestamps outside cannot be written back as dates."""


class BadInput(InputError):
    """Input that cannot be replayed; the message names file, line or setting."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fields = "\n".join(
        f"  {name:<9} {what}" for name, what in {**FIELDS, "generic": GENERIC_FIELD}.items()
    )
    p = sub.add_parser(
        "replay",
        help="backtest detectors on a CSV series or a JSONL recording",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run detectors over recorded history and print each finding with its onset,\n"
            "detection and clear times and its evidence. Exit 0 whether or not anything\n"
            "was found, 2 on bad input.\n\n"
            "FILE is a CSV with the header 'timestamp,value' (timestamps ISO 8601 or epoch\n"
            "seconds, e.g. exported from Prometheus) or a sentinel JSONL recording.\n"
            "Rows out of time order or repeating a timestamp are dropped and counted.\n"
            "For a CSV, --detector says what the value is:\n" + fields
        ),
    )
    p.add_argument("file", help="CSV (timestamp,value) or JSONL recording")
    p.add_argument(
        "--detector",
        choices=[*SECTIONS, "all"],
        help="detector to run (required for a CSV; a recording runs all by default)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the detector, e.g. --set slo_s=0.25 (repeatable; "
        "with --detector all, name the section: --set latency.slo_s=0.25)",
    )
    add_config_arg(p, "take the detectors: section of this config as the base")
    p.add_argument("--json", action="store_true", help="one JSON object per finding")
    p.add_argument(
        "--scores",
        metavar="OUT.csv",
        help="write timestamp,value,score for every replayed row (--detector generic; the "
        "score is in robust sigmas, for threshold-free comparisons)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        episodes, form = replay(args)
    except BadInput as exc:
        print(f"sentinel replay: {exc}", file=sys.stderr)
        return 2
    for ep in episodes:
        if args.json:
            print(json.dumps(_clean(episode_record(ep, form)), separators=(",", ":")))
        else:
            print(episode_text(ep, form))
    if not args.json:
        print(f"{len(episodes)} finding(s)")
    return 0


def replay(args: argparse.Namespace) -> tuple[list[Episode], TimeForm]:
    """Read the input, build the detectors, run them; bad input raises BadInput."""
    path = Path(args.file)
    is_csv = _looks_like_csv(path)
    detector = args.detector or (None if is_csv else "all")
    if detector is None:
        raise BadInput("--detector is required for a CSV (which value does it hold?)")
    if is_csv and detector == "all":
        raise BadInput("a CSV holds one series: name its --detector")
    if is_csv and detector not in SAMPLE_FOR and detector != "generic":
        raise BadInput(f"--detector {detector} reads Triton's counters from a recording, not a CSV")
    if detector == "generic" and not is_csv:
        raise BadInput("--detector generic reads a timestamp,value CSV, not a recording")
    if args.scores and detector != "generic":
        raise BadInput("--scores needs --detector generic")
    settings = _settings(args.config, detector, args.overrides)
    if detector == "generic":
        return replay_generic(path, settings, args.scores)
    if is_csv and detector == "thermal" and settings.thermal.fallback_slowdown_c is None:
        thermal = settings.thermal.model_copy(update={"fallback_slowdown_c": SERIES_SLOWDOWN_C})
        settings = settings.model_copy(update={"thermal": thermal})
        print(
            f"sentinel replay: assuming a slowdown threshold of {SERIES_SLOWDOWN_C:g} C "
            "(--set fallback_slowdown_c=N to change)",
            file=sys.stderr,
        )
    only = None if detector == "all" else (detector,)
    suite = DetectorSuite(settings, only=only)
    if is_csv:
        dropped: list[int] = []
        rows, form = read_csv(path, dropped)
        _report_dropped(path, dropped)
        make = SAMPLE_FOR[detector]
        samples: list[Sample] = [make(ts, v) for ts, v in rows]
    else:
        samples, form = read_recording(path), TimeForm("epoch")
    return run(suite, samples), form


class _Scored:
    """The generic detector, keeping each accepted row's score for --scores."""

    def __init__(self, detector: MetricDetector) -> None:
        self.detector = detector
        self.scores: list[tuple[float, float, float]] = []

    def update(self, ts: float, value: float) -> list[Judgement]:
        out = self.detector.update(ts, value)
        if self.detector.last is not None and self.detector.last.ts == ts:
            self.scores.append((ts, value, self.detector.last.score))
        return out


def replay_generic(
    path: Path, settings: DetectorSettings, scores_to: str | None
) -> tuple[list[Episode], TimeForm]:
    """The generic detector over a CSV; --scores writes each row's score."""
    dropped: list[int] = []
    rows, form = read_csv(path, dropped)
    _report_dropped(path, dropped)
    scored = _Scored(MetricDetector(settings.generic, series=path.stem))
    episodes = run_values(scored, rows)
    if scores_to is not None:
        try:
            with open(scores_to, "w", encoding="utf-8") as out:
                out.write("timestamp,value,score\n")
                for ts, value, score in scored.scores:
                    out.write(f"{form.render(ts)},{value!r},{score:.6g}\n")
        except OSError as exc:
            raise BadInput(f"{scores_to}: cannot write: {exc.strerror}") from exc
    return episodes, form


def _report_dropped(path: Path, dropped: list[int]) -> None:
    if dropped:
        print(
            f"sentinel replay: {path}: dropped {len(dropped)} row(s) out of time order or "
            f"repeating a timestamp (first at line {dropped[0]})",
            file=sys.stderr,
        )


def _settings(config: str | None, detector: str, overrides: list[str]) -> DetectorSettings:
    try:
        base = load_config(config).detectors if config else DetectorSettings()
    except InvalidFile as exc:
        raise BadInput(str(exc)) from exc
    data = base.model_dump()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--set {item}: expected KEY=VALUE")
        section, _, field = key.rpartition(".")
        section = section or detector
        if section not in SECTIONS:
            raise BadInput(f"--set {key}: name the detector section, e.g. latency.{field}")
        known = DetectorSettings.model_fields[section].annotation
        names = sorted(getattr(known, "model_fields", {}))
        if field not in names:
            raise BadInput(
                f"--set {key}: unknown setting of detector {section} (known: {', '.join(names)})"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise BadInput(f"--set {key}: cannot parse {raw!r}") from exc
        data[section][field] = value
    try:
        return DetectorSettings.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"--set {where}: {err['msg']}")
        raise BadInput("; ".join(problems)) from exc


# -- input -------------------------------------------------------------------------------


class TimeForm:
    """How the input wrote its timestamps, so that output can write them the same way."""

    def __init__(self, kind: str, tz: tzinfo | None = None) -> None:
        self.kind = kind
        self.tz = tz

    def render(self, ts: float | None) -> float | str | None:
        if ts is None:
            return None
        if self.kind == "epoch":
            return round(ts, 6)
        moment = datetime.fromtimestamp(ts, tz=self.tz or UTC)
        if self.tz is None:
            moment = moment.replace(tzinfo=None)
        return moment.isoformat()


def _looks_like_csv(path: Path) -> bool:
    if path.suffix.lower() == ".csv":
        return True
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return False
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return not line.lstrip().startswith("{")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text") from exc
    return True


def read_csv(
    path: Path, dropped: list[int] | None = None
) -> tuple[list[tuple[float, float]], TimeForm]:
    """(epoch seconds, value) rows of a ``timestamp,value`` CSV, and its time form.

    A row not later than the one kept before it (out of order, or a repeated timestamp)
    is dropped; its line number goes to ``dropped``.
    """
    rows: list[tuple[float, float]] = []
    form: TimeForm | None = None
    try:
        for lineno, ts, value, this_form in _csv_rows(path):
            if form is None:
                form = this_form
            elif form.kind != this_form.kind:
                raise BadInput(f"{path}:{lineno}: timestamp: mixes ISO 8601 and epoch seconds")
            if rows and ts <= rows[-1][0]:
                if dropped is not None:
                    dropped.append(lineno)
                continue
            rows.append((ts, value))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text") from exc
    return rows, form or TimeForm("epoch")


def _csv_rows(path: Path) -> Iterator[tuple[int, float, float, TimeForm]]:
    header_seen = False
    with path.open(encoding="utf-8") as fh:
        for lineno, line in bounded_lines(fh):
            if line is None:
                raise BadInput(f"{path}:{lineno}: line longer than {MAX_LINE_CHARS} characters")
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            cells = [c.strip().strip('"') for c in text.split(",")]
            if not header_seen:
                if [c.lower() for c in cells] != ["timestamp", "value"]:
                    raise BadInput(f"{path}:{lineno}: expected the header 'timestamp,value'")
                header_seen = True
                continue
            if len(cells) != 2:
                raise BadInput(f"{path}:{lineno}: expected 2 fields, got {len(cells)}")
            ts, form = _parse_time(cells[0], path, lineno)
            try:
                value = float(cells[1])
            except ValueError:
                raise BadInput(f"{path}:{lineno}: value: not a number: {cells[1]!r}") from None
            if not math.isfinite(value):
                raise BadInput(f"{path}:{lineno}: value: not finite: {cells[1]!r}")
            yield lineno, ts, value, form
    if not header_seen:
        raise BadInput(f"{path}: empty; expected the header 'timestamp,value'")


def _parse_time(text: str, path: Path, lineno: int) -> tuple[float, TimeForm]:
    try:
        ts = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(ts):
            raise BadInput(f"{path}:{lineno}: timestamp: not finite: {text!r}")
        if not _EPOCH_RANGE[0] <= ts <= _EPOCH_RANGE[1]:
            raise BadInput(f"{path}:{lineno}: timestamp: out of range: {text!r}")
        return ts, TimeForm("epoch")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{path}:{lineno}: timestamp: neither ISO 8601 nor epoch seconds: {text!r}"
        ) from None
    tz = moment.tzinfo
    if tz is None:
        moment = moment.replace(tzinfo=UTC)
    elif text.endswith("Z"):
        tz = UTC
    else:
        offset = moment.utcoffset() or timedelta(0)
        tz = timezone(offset) if offset else UTC
    return moment.timestamp(), TimeForm("iso", tz)


def read_recording(path: Path) -> list[Sample]:
    """All samples of a JSONL recording; any bad line is bad input (named with its line)."""
    problems: list[str] = []
    try:
        samples = list(
            iter_recording(path, on_bad_line=lambda n, msg: problems.append(f"{path}:{n}: {msg}"))
        )
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text") from exc
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BadInput("; ".join(problems[:5]) + more)
    samples.sort(key=lambda s: s.ts)
    return samples


# -- output ------------------------------------------------------------------------------


def episode_record(ep: Episode, form: TimeForm) -> dict[str, Any]:
    f = ep.finding
    return {
        "kind": f.kind,
        "severity": f.severity.value,
        "subject": f.subject.key(),
        "started_at": form.render(f.started_at),
        "detected_at": form.render(f.detected_at),
        "cleared_at": form.render(ep.cleared_at),
        "summary": f.summary,
        "detector": f.detector,
        "evidence": f.evidence,
        "clear_evidence": ep.clear_evidence,
    }


def episode_text(ep: Episode, form: TimeForm) -> str:
    r = episode_record(ep, form)
    cleared = r["cleared_at"] if r["cleared_at"] is not None else "(still open)"
    evidence = json.dumps(_clean(r["evidence"]), separators=(", ", ": "))
    return (
        f"{r['kind']} [{r['severity']}] {r['subject']}: {r['summary']}\n"
        f"  started {r['started_at']}  detected {r['detected_at']}  cleared {cleared}\n"
        f"  evidence {evidence}"
    )


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
