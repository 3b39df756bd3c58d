"""Analyse a recording and write its one-page PDF report.

    python scripts/report.py RECORDING [--out report.pdf] [--site mitral] [--patient P-17]

The recording is analysed with the committed model and kept in the history like an upload
(source "upload"); the report is the same as the app's "Report (PDF)" and the API's
``GET /v1/analyses/{id}/report.pdf``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common

from auscult.errors import AuscultError
from auscult.service import Service
from auscult.store import SITES


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("recording", type=Path)
    p.add_argument("--out", type=Path, help="PDF to write (default: next to the recording)")
    p.add_argument("--site", choices=SITES)
    p.add_argument("--patient", help="pseudonymous patient or exam id")
    args = p.parse_args()
    _common.setup_logging()
    out = args.out or args.recording.with_suffix(".report.pdf")
    service = Service()
    try:
        data = args.recording.read_bytes()
        done = service.analyse_upload(
            data, args.recording.name, site=args.site, patient_id=args.patient
        )
        out.write_bytes(service.report_pdf(done.entry.id))
    except (AuscultError, OSError) as exc:
        print(f"{args.recording}: {exc}", file=sys.stderr)
        return 2
    print(f"{done.result.label} — report written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
