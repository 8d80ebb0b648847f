"""B1 save: ``save_complete_operation`` on a local store vs the raw floor of plain Python writes.

Per operation: a 256 KiB PNG input (distinct per operation unless the variant says otherwise, so
content addressing does not skip writes), a 1 MiB PNG result and small parameters. The floor
writes the same bytes (input, result, a JSON record) with the same durability policy: temp file
then ``os.replace``, with ``fsync`` of file and folder in the fsync variant (the local backend's
``?fsync=true``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import statistics
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._util import KiB, MiB, fresh_dir

__all__ = ["bench_save"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _noise_png(size: int, seed: int) -> bytes:
    """A valid RGB noise PNG a little under ``size`` bytes (noise does not compress)."""
    from PIL import Image

    side = int(((size - 4 * KiB) / 3) ** 0.5)
    pixels = random.Random(seed).randbytes(side * side * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def _padded(base: bytes, size: int, counter: int) -> bytes:
    """``base`` plus a private chunk holding ``counter``: exactly ``size`` bytes, and unique."""
    pad = size - len(base) - 12
    if pad < 8:
        raise ValueError("base PNG too large for the target size")
    data = counter.to_bytes(8, "big") + bytes(pad - 8)
    return base[:-12] + _png_chunk(b"gsBn", data) + base[-12:]


_PARAMS: dict[str, Any] = {"aspectRatio": "16:9", "guidance": 3.5, "steps": 28, "model": "flux-dev"}


def _atomic_write(tmp_dir: str, dest: str, data: bytes, fsync: bool) -> None:
    """The floor's write: temp file, optional fsync, os.replace, optional folder fsync."""
    tmp = os.path.join(tmp_dir, uuid.uuid4().hex)
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, dest)
    if fsync:
        fd = os.open(os.path.dirname(dest), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Floor:
    """Plain Python writing each operation's input, result and JSON record (the raw floor)."""

    def __init__(self, root: Path, fsync: bool) -> None:
        self.root, self.fsync = root, fsync
        self.tmp_dir = str(root / ".tmp")
        os.makedirs(self.tmp_dir)
        self.made: set[str] = set()
        self.written: set[int] = set()

    def save(self, i: int, data: bytes, result: bytes, parameters: dict[str, Any]) -> None:
        ops = os.path.join(self.root, "operations", "day")
        in_dir = os.path.join(self.root, "inputs", f"{i % 256:02x}")
        for d in (ops, in_dir):
            if d not in self.made:
                os.makedirs(d, exist_ok=True)
                self.made.add(d)
        # The same object again is the same bytes: written once, as content addressing would.
        if id(data) not in self.written:
            self.written.add(id(data))
            _atomic_write(self.tmp_dir, os.path.join(in_dir, f"{i}.png"), data, self.fsync)
        _atomic_write(self.tmp_dir, os.path.join(ops, f"{i}_out.png"), result, self.fsync)
        record = {
            "operation_id": str(i),
            "operation_type": "image_edit_single",
            "prompt": "a cat in a hat",
            "parameters": parameters,
            "inputs": [f"{i}.png"],
            "result": f"{i}_out.png",
            "user_id": "user_1",
            "created_at": datetime.now(UTC).isoformat(),
        }
        _atomic_write(
            self.tmp_dir, os.path.join(ops, f"{i}.json"), json.dumps(record).encode(), self.fsync
        )


def _save_round(
    inputs: Sequence[bytes], result: bytes, fsync: bool, batch: int
) -> dict[str, tuple[float, float]]:
    """One round in fresh folders: (wall s, CPU s) per side, sides interleaved batch by batch.

    Everything both sides write (inputs, result, parameters) is made before any clock starts,
    and dirty pages are written back (``os.sync``) before each timed segment, so neither side
    pays for the other's writeback or for making its arguments.
    """
    import genstore

    parameters = [{**_PARAMS, "seed": i} for i in range(len(inputs))]
    spent = {"genstore": [0.0, 0.0], "floor": [0.0, 0.0]}
    with fresh_dir("save") as root:
        floor = _Floor(root / "floor", fsync)
        url = f"{root / 'genstore'}?fsync=true" if fsync else str(root / "genstore")
        with genstore.open_store(url) as store:

            def ours(i: int) -> None:
                store.save_complete_operation(
                    operation_type="image_edit_single",
                    prompt="a cat in a hat",
                    parameters=parameters[i],
                    input_images=[inputs[i]],
                    result=result,
                    user_id="user_1",
                )

            sides: dict[str, Callable[[int], None]] = {
                "genstore": ours,
                "floor": lambda i: floor.save(i, inputs[i], result, parameters[i]),
            }
            for n, first in enumerate(range(0, len(inputs), batch)):
                # Alternate who goes first so neither side always follows the other's writes.
                for side in ("genstore", "floor") if n % 2 == 0 else ("floor", "genstore"):
                    os.sync()  # outside the clock: each segment starts with no dirty pages
                    wall, cpu = time.perf_counter(), time.process_time()
                    for i in range(first, min(len(inputs), first + batch)):
                        sides[side](i)
                    spent[side][0] += time.perf_counter() - wall
                    spent[side][1] += time.process_time() - cpu
    return {side: (w, c) for side, (w, c) in spent.items()}


def _save_variant(
    label: str,
    inputs: Sequence[bytes],
    result: bytes,
    fsync: bool,
    rounds: int,
    goals: tuple[float, float | None] = (0.7, None),
    batch: int = 5,
) -> list[dict[str, Any]]:
    """Median ops/s (wall) and CPU ms/op of genstore and the floor over ``rounds`` rounds.

    ``goals``: the least ops/s ratio and the most CPU ratio (genstore / floor; None: no goal).
    """
    n = len(inputs)
    walls: dict[str, list[float]] = {"genstore": [], "floor": []}
    cpus: dict[str, list[float]] = {"genstore": [], "floor": []}
    for _ in range(rounds):
        for side, (wall, cpu) in _save_round(inputs, result, fsync, batch).items():
            walls[side].append(n / wall)
            cpus[side].append(cpu / n * 1000)
    ours, floor = statistics.median(walls["genstore"]), statistics.median(walls["floor"])
    our_cpu, floor_cpu = statistics.median(cpus["genstore"]), statistics.median(cpus["floor"])
    # Both sides of a round ran under the same conditions: compare within rounds, then take the
    # median, so a round slowed by other load on the machine does not skew one side only.
    ratios = [g / f for g, f in zip(walls["genstore"], walls["floor"], strict=True)]
    ratio = statistics.median(ratios)
    cpu_ratios = [g / f for g, f in zip(cpus["genstore"], cpus["floor"], strict=True)]
    cpu_ratio = statistics.median(cpu_ratios)
    least_ops, most_cpu = goals
    hash_cpu = _hash_cpu_ms(inputs[: min(n, 200)], result)
    beyond = statistics.median(
        [(g - hash_cpu) / f for g, f in zip(cpus["genstore"], cpus["floor"], strict=True)]
    )
    return [
        {
            "metric": f"save ops/s, {label}",
            "value": round(ours, 1),
            "unit": "ops/s",
            "baseline": round(floor, 1),
            "baseline_label": "raw floor ops/s",
            "ratio": round(ratio, 3),
            "ratio_label": "genstore / floor, median of rounds",
            "goal": f"ratio >= {least_ops}",
            "ok": ratio >= least_ops,
            "round ratios": [round(r, 3) for r in ratios],
            "rounds ops/s": {k: [round(v, 1) for v in vs] for k, vs in walls.items()},
        },
        {
            "metric": f"CPU per save, {label}",
            "value": round(our_cpu, 2),
            "unit": "ms/op",
            "baseline": round(floor_cpu, 2),
            "baseline_label": "raw floor CPU ms/op",
            "ratio": round(cpu_ratio, 3),
            "ratio_label": "genstore CPU / floor CPU, median of rounds",
            "goal": None if most_cpu is None else f"ratio <= {most_cpu}",
            "ok": None if most_cpu is None else cpu_ratio <= most_cpu,
            "round ratios": [round(r, 3) for r in cpu_ratios],
        },
        {
            "metric": f"CPU per save beyond the SHA-256 content addressing needs, {label}",
            "value": round(our_cpu - hash_cpu, 2),
            "unit": "ms/op",
            "baseline": round(floor_cpu, 2),
            "baseline_label": "raw floor CPU ms/op",
            "ratio": round(beyond, 3),
            "ratio_label": "(genstore CPU - SHA-256 CPU) / floor CPU, median of rounds",
            "sha256 ms/op": round(hash_cpu, 3),
        },
    ]


def _hash_cpu_ms(inputs: Sequence[bytes], result: bytes) -> float:
    """CPU ms per operation of hashing its input and result (what content addressing and each
    ArtifactRef's sha256 need, and the floor does not do), measured in the same run."""
    started = time.process_time()
    for data in inputs:
        hashlib.sha256(data).hexdigest()
        hashlib.sha256(result).hexdigest()
    return (time.process_time() - started) / len(inputs) * 1000


def bench_save(ops: int = 1000, fsync_ops: int = 300, rounds: int = 3) -> dict[str, Any]:
    """B1: save_complete_operation vs the raw floor, three variants (see the rows' metric)."""
    in_base = _noise_png(256 * KiB, seed=1)
    result = _padded(_noise_png(MiB, seed=2), MiB, 0)
    distinct = [_padded(in_base, 256 * KiB, i) for i in range(ops)]
    same = [distinct[0]] * ops
    rows = [
        *_save_variant(
            "distinct inputs, no fsync", distinct, result, False, rounds, goals=(0.9, 1.3)
        ),
        *_save_variant("same input every op (stored once), no fsync", same, result, False, rounds),
        *_save_variant(
            "distinct inputs, fsync on both", distinct[:fsync_ops], result, True, rounds
        ),
    ]
    return {
        "name": "B1 save",
        "description": "save_complete_operation on a local store (files + SQLite) vs the same "
        "bytes written by plain Python (temp file + os.replace per file)",
        "rows": rows,
        "params": {
            "ops": ops,
            "fsync_ops": fsync_ops,
            "rounds": rounds,
            "result_bytes": len(result),
            "input_bytes": 256 * KiB,
        },
        "notes": [
            "Per operation the floor writes the input PNG, the 1 MiB result and a small JSON "
            "record; genstore also hashes, sniffs, validates and indexes the record in SQLite.",
            "Same-input variant: both sides write the repeated input once.",
            "Both sides run in the same round, interleaved 5 operations at a time (who goes "
            "first alternates), each in a fresh folder on the same filesystem; os.sync() is "
            "called before every timed segment of 5 (outside the clock), so neither side rides "
            "on the other's writeback. Both get the same bytes and parameters, made before the "
            "clock starts. ops/s are medians of the rounds; each ratio is the median of the "
            "per-round ratios.",
            "CPU = user + system time of the process (time.process_time), less sensitive than "
            "wall time to other load on the machine.",
            "Where genstore's extra CPU goes (perf over 800 saves on this VM, 2026-11-29): "
            "SHA-256 of the 1.25 MiB (libcrypto) 0.84 ms per save, more kernel time than the "
            "floor's 0.32 ms (the SQLite row's WAL writes, the input's existence check), "
            "pydantic 0.09 ms. The hash alone is over half the floor's CPU when the floor "
            "measures under 1.7 ms, so the 1.3x CPU goal cannot hold there.",
        ],
    }
