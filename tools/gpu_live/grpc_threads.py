"""How many threads gRPC core starts in a Python process on this machine (an aio channel
to an unreachable target, one call, as sentinel's gRPC Triton client would)."""

import asyncio
import os

import grpc


def threads() -> list[str]:
    names = []
    for t in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{t}/comm") as f:
            names.append(f.read().strip())
    return names


async def main() -> None:
    before = threads()
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
        try:
            await call(b"", timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            print("call:", exc.code())
        await asyncio.sleep(2)
        after = threads()
    print(f"cpus {os.cpu_count()}, grpc {grpc.__version__}: threads {len(before)} -> {len(after)}")
    print(sorted(after))


asyncio.run(main())
