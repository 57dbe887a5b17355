"""Check the GPU-serving digits model by hand: one raw inference, then sentinel's canary."""

import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from repository import serving_repository  # noqa: E402

from sentinel.probes.canary import CanaryProbe  # noqa: E402
from sentinel.probes.settings import CanarySettings, TritonSettings  # noqa: E402
from sentinel.probes.triton import connect  # noqa: E402
from sentinel.testing.triton_local import LocalTriton  # noqa: E402


async def main() -> None:
    work = Path(tempfile.mkdtemp())
    repo = serving_repository(work, sys.argv[1] if len(sys.argv) > 1 else "cuda")
    server = LocalTriton(repo, workdir=work / "triton", extra_args=sys.argv[2:])
    await asyncio.to_thread(server.start)
    try:
        body = {
            "inputs": [{"name": "INPUT", "shape": [2, 64], "datatype": "FP32", "data": [0.5] * 128}]
        }
        url = f"http://{server.http_url}/v2/models/digits/infer"
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as r:
            print("raw infer:", r.status, (await r.text())[:600], flush=True)
        triton = connect(TritonSettings(url=server.http_url, protocol="http"))
        probe = CanaryProbe(
            triton,
            CanarySettings(
                model="digits", golden_set=ROOT / "examples/golden/digits.npz", batch_sizes=[1, 8]
            ),
        )
        for s in await probe.once():
            print("canary:", s, flush=True)
    finally:
        await asyncio.to_thread(server.stop)
        print(server.log_path.read_text()[-3000:])


asyncio.run(main())
