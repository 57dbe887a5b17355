"""Restarting the server where the sidecar shares its process namespace:
a signal to tritonserver (found by pid file or by name in /proc), or an
allowlisted argv command. Never a shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from sentinel.base.duration import Duration
from sentinel.runbook.actions.base import ActionContext, ActionParams, ActionSpec, NoUndo, param
from sentinel.runbook.errors import ActionError


def find_server_pid(pid_file: Path | None, names: list[str], proc: Path = Path("/proc")) -> int:
    """The server's pid: from the pid file if given, else the oldest process named names[0]."""
    if pid_file is not None:
        try:
            return int(pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError) as exc:
            raise ActionError(f"cannot read server pid from {pid_file}: {exc}") from exc
    wanted = names[0] if names else "tritonserver"
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text(encoding="utf-8").strip()
        except OSError:
            continue  # gone, or not ours to read
        if comm == wanted[:15]:  # the kernel truncates comm to 15 characters
            found.append(int(entry.name))
    if not found:
        raise ActionError(f"no process named {wanted!r} found in {proc}")
    return min(found)


class SignalParams(ActionParams):
    signal: str = "SIGTERM"
    """A signal name (SIGTERM, SIGINT...); it must also be in playbooks.allowed_signals."""
    wait_exit_s: Duration = Field(0.0, ge=0)
    """Then wait this long for the process to exit (0: do not wait)."""
    kill_after_s: Duration = Field(0.0, ge=0)
    """SIGKILL the process if it is still running this long after the signal (0: never;
    needs SIGKILL in playbooks.allowed_signals)."""

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, v: str) -> str:
        if v.upper() not in signal.Signals.__members__:
            raise ValueError(f"unknown signal {v!r} (e.g. SIGTERM, SIGINT, SIGKILL)")
        return v


class Signal(NoUndo):
    """Send an allowlisted signal to the server (SIGTERM: its supervisor restarts it)."""

    spec = ActionSpec(
        "process.signal",
        side_effects=True,
        mutating=True,
        disruptive=True,
        summary="signal the server's process (by server_pid_file, or by name in /proc)",
        params=SignalParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        name = param(params, "signal", str, "SIGTERM").upper()
        if name not in ctx.settings.allowed_signals:
            raise ActionError(f"with.signal: {name} is not in playbooks.allowed_signals")
        try:
            signum = signal.Signals[name]
        except KeyError as exc:
            raise ActionError(f"with.signal: unknown signal {name}") from exc
        wait_exit = param(params, "wait_exit_s", float, 0.0)
        kill_after = param(params, "kill_after_s", float, 0.0)
        if kill_after > 0 and "SIGKILL" not in ctx.settings.allowed_signals:
            raise ActionError("with.kill_after_s: SIGKILL is not in playbooks.allowed_signals")
        pid = find_server_pid(ctx.settings.server_pid_file, ctx.settings.server_process_names)
        if pid in (os.getpid(), 0, 1):
            raise ActionError(f"refusing to signal pid {pid}")
        try:
            os.kill(pid, signum)
        except ProcessLookupError as exc:
            raise ActionError(f"server pid {pid} is gone") from exc
        except PermissionError as exc:
            raise ActionError(f"not allowed to signal pid {pid}: {exc}") from exc
        out: dict[str, Any] = {"pid": pid, "signal": name}
        if kill_after > 0:
            # a hung (or stopped) server ignores SIGTERM: escalate like a kubelet's grace period
            try:
                out["exited_after_s"] = await _wait_gone(ctx, pid, kill_after)
            except ActionError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                out["killed_after_s"] = kill_after
        if wait_exit > 0 and "exited_after_s" not in out:
            # a server shutting down still answers 'ready' for a while: wait until it is gone
            out["exited_after_s"] = await _wait_gone(ctx, pid, wait_exit)
        return out


def alive(pid: int, proc: Path = Path("/proc")) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


async def _wait_gone(ctx: ActionContext, pid: int, within: float) -> float:
    start = ctx.clock.monotonic()
    while alive(pid):
        waited = ctx.clock.monotonic() - start
        if waited >= within:
            raise ActionError(f"pid {pid} still running {within:g} s after the signal")
        await ctx.clock.sleep(0.5)
    return ctx.clock.monotonic() - start


class ExecParams(ActionParams):
    command: str = Field(min_length=1)
    """A name in playbooks.commands."""


class Exec(NoUndo):
    """Run a command named in playbooks.commands (an argv list, never a shell)."""

    spec = ActionSpec(
        "process.exec",
        side_effects=True,
        mutating=True,
        disruptive=True,
        summary="run a command named in playbooks.commands (an argv list; never a shell)",
        params=ExecParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        name = param(params, "command", str)
        argv = ctx.settings.commands.get(name)
        if not argv:
            raise ActionError(f"with.command: {name!r} is not in playbooks.commands")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            raise ActionError(f"cannot start {argv[0]}: {exc}") from exc
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        tail = out.decode("utf-8", "replace")[-2000:]
        if proc.returncode != 0:
            raise ActionError(f"{name} exited with {proc.returncode}: {tail.strip()[-300:]}")
        return {"command": name, "returncode": proc.returncode, "output": tail}
