"""Peak memory (and time) of receiving hostile and large uploads, each in a fresh process.

    python benchmarks/bench_upload_memory.py [--json] [--out FILE]

Cases (files are made once under ``<work_dir>/bench``):
- ``flac_bomb_8ch_96k_10min``: a ~0.5 MB FLAC of one constant value, 8 channels, 96 kHz,
  10 minutes — decodes to 1.8 GB of float32 if decoded whole.
- ``flac_bomb_1h_header``: a 1 s FLAC whose header claims one hour (refused from the header).
- ``opus_1h`` / ``aac_1h``: an hour of quiet noise as WebM/Opus and M4A/AAC (the
  container may or may not say how long it is; decoding stops at the 10-minute limit).
- ``wav_10min_48k``: a legitimate 10-minute 48 kHz 16-bit WAV (57.6 MB), received and then
  analysed.
- ``parallel_8x_wav_10min``: eight of those received at once through ``Service.receive``
  from eight threads (two decode at a time, the rest wait).

Reported per case: the answer (stored, or the refusal), seconds, and the peak resident
memory above the process's baseline (imports done, file bytes already in memory).
Target (issue "Hardening"): every case ≤ 300 MB above baseline; a one-hour bomb refused
within 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import get_settings  # noqa: E402

CASE = r"""
import json, sys, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, {root!r})
import dataclasses
from auscult.service import Service
from auscult.errors import AuscultError
from config import get_settings

settings = dataclasses.replace(get_settings(), work_dir=Path(tempfile.mkdtemp()))
service = Service(settings)
paths = {paths!r}
data = [Path(p).read_bytes() for p in paths]
analyse = {analyse!r}
if analyse:
    service.analyzer  # the model is part of the baseline
def high_water_kb():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over exec
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1])
base = high_water_kb()
answers = []
def receive(blob):
    try:
        d = service.receive(blob, source="api")
        answer = f"stored {{d.duration_s:.0f}} s"
        if analyse:
            service.process_pending()
            answer += ", analysed: " + str(service.get(d.entry_id).label)
    except AuscultError as exc:
        answer = f"{{type(exc).__name__}}: {{exc}}"
    answers.append(answer)
started = time.perf_counter()
threads = [threading.Thread(target=receive, args=(b,)) for b in data]
for t in threads: t.start()
for t in threads: t.join()
seconds = time.perf_counter() - started
peak = high_water_kb()
print(json.dumps({{"answer": sorted(set(answers)), "seconds": round(seconds, 2),
                  "peak_mb_above_baseline": round((peak - base) / 1024, 1)}}))
"""


def make_files(folder: Path) -> dict[str, Path]:
    """The case files, made once (they take seconds to encode)."""
    import numpy as np
    import soundfile as sf

    from auscult.phone_channel import encode_phone
    from auscult.synthetic import heart_sound

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "flac_bomb_8ch_96k_10min": folder / "bomb_8ch_96k_10min.flac",
        "flac_bomb_1h_header": folder / "bomb_1h_header.flac",
        "opus_1h": folder / "noise_1h.webm",
        "aac_1h": folder / "noise_1h.m4a",
        "wav_10min_48k": folder / "heart_10min_48k.wav",
    }
    if not files["flac_bomb_8ch_96k_10min"].exists():
        with sf.SoundFile(
            files["flac_bomb_8ch_96k_10min"], "w", 96000, 8, "PCM_16", format="FLAC"
        ) as f:
            block = np.full((96000 * 10, 8), 1000, np.int16)
            for _ in range(60):
                f.write(block)
    if not files["flac_bomb_1h_header"].exists():
        raw = bytearray(flac_bytes(heart_sound(1.0, 48000, seed=1), 48000))
        claim_total_samples(raw, 3600 * 48000)
        files["flac_bomb_1h_header"].write_bytes(bytes(raw))
    noise = (0.01 * np.random.default_rng(0).standard_normal(48000 * 3600)).astype(np.float32)
    for key, fmt in (("opus_1h", "webm"), ("aac_1h", "mp4")):
        if not files[key].exists():
            files[key].write_bytes(encode_phone(noise, 48000, fmt))
    if not files["wav_10min_48k"].exists():
        x = np.tile(heart_sound(60.0, 48000, seed=2), 10)
        sf.write(files["wav_10min_48k"], x, 48000, subtype="PCM_16")
    return files


def flac_bytes(x, rate: int) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def claim_total_samples(flac: bytearray, total: int) -> None:
    """Rewrite STREAMINFO's 36-bit total-samples field (bytes 8+10 … 8+18 of the file)."""
    at = 8 + 10  # "fLaC", block header, min/max block size, min/max frame size
    packed = int.from_bytes(flac[at : at + 8], "big")
    packed = (packed & ~((1 << 36) - 1)) | total
    flac[at : at + 8] = packed.to_bytes(8, "big")


def run_case(paths: list[Path], analyse: bool) -> dict:
    code = CASE.format(root=str(ROOT), paths=[str(p) for p in paths], analyse=analyse)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    files = make_files(get_settings().work_dir / "bench")
    cases = {
        "flac_bomb_8ch_96k_10min": ([files["flac_bomb_8ch_96k_10min"]], False),
        "flac_bomb_1h_header": ([files["flac_bomb_1h_header"]], False),
        "opus_1h": ([files["opus_1h"]], False),
        "aac_1h": ([files["aac_1h"]], False),
        "wav_10min_48k": ([files["wav_10min_48k"]], True),
        "parallel_8x_wav_10min": ([files["wav_10min_48k"]] * 8, False),
    }
    results = {}
    for name, (paths, analyse) in cases.items():
        results[name] = {
            "file_mb": round(paths[0].stat().st_size / 1e6, 2),
            **run_case(paths, analyse),
        }
        if not args.json:
            r = results[name]
            print(
                f"{name:26s} {r['file_mb']:7.2f} MB  {r.get('seconds', float('nan')):6.2f} s  "
                f"peak +{r.get('peak_mb_above_baseline', float('nan')):6.1f} MB  "
                f"{'; '.join(r.get('answer', r.get('error', [])))[:90]}"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
