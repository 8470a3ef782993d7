#!/usr/bin/env python
"""Give each replica of a scaled GPU worker its own GPUs, then run the worker's command.

Docker hands every replica of a compose service the same devices: it does not share a host's GPUs
out among replicas, so `docker compose up --scale ray-worker=N` would have N Ray nodes count the
same GPUs. Each replica instead claims a free group of GPUs by locking one file per GPU in a
folder that the replicas on a host share, sets CUDA_VISIBLE_DEVICES to that group (Ray counts the
GPUs it names) and becomes the command, which keeps the locks until its container stops.

    gpu-claim --each 1 --claims /claims -- ray start --address ray-head:6379 --block
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path

ALL = "all"


def visible_devices() -> int:
    import torch

    return torch.cuda.device_count()


def lock(path: Path) -> int | None:
    """An open, inheritable descriptor holding ``path``'s lock, or None when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, True)
    return fd


def claim(claims: Path, devices: int, each: int) -> list[int] | None:
    """The first group of ``each`` consecutive GPUs no other replica holds, now held by us."""
    claims.mkdir(parents=True, exist_ok=True)
    for first in range(0, devices - each + 1, each):
        group = list(range(first, first + each))
        held = []
        for index in group:
            fd = lock(claims / f"gpu-{index}.lock")
            if fd is None:
                break
            held.append(fd)
        if len(held) == each:
            return group
        for fd in held:
            os.close(fd)
    return None


def _each(value: str) -> int | str:
    if value == ALL:
        return ALL
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"give a positive number of GPUs or '{ALL}', got {value}")
    return int(value)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu-claim", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--each", type=_each, default=ALL, help=f"GPUs per replica, or '{ALL}' (claim nothing)"
    )
    parser.add_argument("--claims", type=Path, default=Path("/claims"), help="shared lock folder")
    parser.add_argument("--devices", type=int, help="GPUs this container sees (default: CUDA's)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the command to run after --")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.each != ALL:
        devices = visible_devices() if args.devices is None else args.devices
        if devices < args.each:
            print(
                f"gpu-claim: error: this container sees {devices} GPU(s), fewer than --each "
                f"{args.each}: check the service's deploy.resources.reservations.devices and the "
                "NVIDIA container toolkit on the host",
                file=sys.stderr,
            )
            return 1
        group = claim(args.claims, devices, args.each)
        if group is None:
            print(
                f"gpu-claim: error: no {args.each} free GPU(s) among the {devices} this container "
                f"sees: the other replicas hold them (locks in {args.claims}); scale ray-worker "
                f"to at most {devices // args.each} per host, or lower RAY_WORKER_GPUS",
                file=sys.stderr,
            )
            return 1
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, group))
        print(
            f"gpu-claim: this replica has GPU(s) {os.environ['CUDA_VISIBLE_DEVICES']}", flush=True
        )
    try:
        os.execvp(args.command[0], args.command)
    except OSError as exc:
        print(f"gpu-claim: error: cannot run {args.command[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
