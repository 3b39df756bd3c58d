"""Download the PhysioNet/CinC Challenge 2016 training set (official WAV distribution).

    python scripts/download_physionet.py [--out DIR]

Fetches ``training.zip`` (about 1 GB: training-a … training-f with REFERENCE.csv and WAV
files) from PhysioNet, shows progress, and unpacks it into ``--out`` (default: the configured
data folder, ``AUSCULT_DATA_DIR``). Resumes nothing: a failed download is removed and can be
started again. Licence: Open Data Commons Attribution; cite Liu et al. 2016 (see README).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import _common  # noqa: F401  (import path)
from tqdm import tqdm

from config import get_settings

URL = "https://physionet.org/files/challenge-2016/1.0.0/training.zip"


def download(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length", 0)) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="training.zip") as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def unpack(archive: Path, out: Path) -> int:
    """Extract the training-x folders into ``out``; returns the number of WAV files."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.namelist() if "/training-" in f"/{m}" and not m.endswith("/")]
        for member in tqdm(members, desc="unpacking", unit="file"):
            relative = Path(member[member.index("training-") :])
            dest = out / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return sum(1 for _ in out.glob("training-*/*.wav"))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=get_settings().data_dir)
    p.add_argument("--url", default=URL)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "training.zip"
        try:
            download(args.url, archive)
        except OSError as exc:
            print(
                f"download failed ({exc}); check the network and run the command again",
                file=sys.stderr,
            )
            return 1
        n = unpack(archive, args.out)
    missing = [d.name for d in args.out.glob("training-*") if not (d / "REFERENCE.csv").exists()]
    if n == 0 or missing:
        print(
            f"the archive did not contain the expected layout (missing REFERENCE.csv in {missing})",
            file=sys.stderr,
        )
        return 1
    print(f"{n} recordings in {args.out}; train with `make train`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
