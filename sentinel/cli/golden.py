"""`sentinel golden capture --model M [--version V] --inputs FILE --out golden.npz`.

Records the reference outputs of a model known to be good, tensor or streaming; the
file format is in docs/golden-sets.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

from sentinel.base.yamlsource import InvalidFile
from sentinel.cli.config_load import add_config_arg
from sentinel.config import load_config
from sentinel.probes.golden_capture import CaptureError, capture, read_inputs
from sentinel.probes.settings import TritonSettings
from sentinel.probes.tensors import Array, TensorError
from sentinel.probes.triton import TritonError, connect


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("golden", help="capture golden sets from a model known to be good")
    golden = p.add_subparsers(dest="golden_command", metavar="ACTION", required=True)
    c = golden.add_parser("capture", help="record a model's outputs for the given inputs")
    c.add_argument("--model", required=True, help="model name as Triton serves it")
    c.add_argument("--version", default="", help="model version ('' = Triton's choice)")
    c.add_argument("--inputs", required=True, help=".npz of input tensors, or .json {name: [rows]}")
    c.add_argument("--out", required=True, help="golden .npz to write")
    c.add_argument("--output", action="append", default=[], help="output to keep (repeatable)")
    add_config_arg(c, "take triton.url and triton.protocol from this config")
    c.add_argument("--url", help="Triton endpoint host:port (default: config or localhost:8001)")
    c.add_argument("--protocol", choices=["grpc", "http"], help="default: config or grpc")
    c.add_argument("--stream-url", help="gRPC host:port for a streaming model (default: --url)")
    c.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        base = load_config(args.config).triton if args.config else TritonSettings()
    except InvalidFile as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    update = {k: v for k, v in (("url", args.url), ("protocol", args.protocol)) if v}
    settings = base.model_copy(update=update)
    stream_url = args.stream_url or (settings.url if settings.protocol == "grpc" else None)
    try:
        arrays = asyncio.run(_capture(args, settings, stream_url))
    except (CaptureError, TensorError) as exc:
        print(f"sentinel golden capture: {exc}", file=sys.stderr)
        return 2
    except TritonError as exc:
        print(f"sentinel golden capture: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        np.savez(f, **arrays)
    detail = ", ".join(f"{k} {a.dtype}{list(a.shape)}" for k, a in arrays.items())
    print(f"wrote {out}: {detail}")
    return 0


async def _capture(
    args: argparse.Namespace, settings: TritonSettings, stream_url: str | None
) -> dict[str, Array]:
    triton = connect(settings)
    try:
        metadata = await triton.model_metadata(args.model, args.version)
        inputs = read_inputs(Path(args.inputs), metadata)
        return await capture(
            triton,
            args.model,
            inputs,
            version=args.version,
            outputs=args.output,
            stream_url=stream_url,
        )
    finally:
        await triton.close()
