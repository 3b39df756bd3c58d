"""The desktop analyzer's Model page: what the committed model is, how well it works, its limits.

Reads ``models/metadata.json`` and the files under ``models/evaluation/`` (metrics, plots,
phone simulation, benchmark) and ``models/experiments.md``; writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from auscult.errors import AuscultError
from auscult.model_card import ModelCard, load_card
from auscult.registry import Registry
from config import get_settings
from desktop.resources import service

__all__ = ["page_model"]


_METRIC_COLUMNS = {
    name: st.column_config.NumberColumn(name, format="%.2f") for name in ("Se", "Sp", "MAcc", "AUC")
}


def _metrics_rows(table: dict[str, Any], first: str) -> list[dict[str, Any]]:
    rows = []
    for name, m in table.items():
        if not isinstance(m, dict):
            continue
        rows.append(
            {
                first: f"training-{name}" if len(name) == 1 else name,
                "records": m.get("n"),
                "abnormal": m.get("n_abnormal"),
                "Se": m.get("sensitivity"),
                "Sp": m.get("specificity"),
                "MAcc": m.get("macc"),
                "AUC": m.get("auc"),
            }
        )
    return rows


def _calibration_section(card: ModelCard) -> None:
    """How far the probabilities can be trusted, and the borderline band."""
    calibration, band = card.calibration, card.borderline
    if not calibration:
        return
    ece = calibration.get("ece", {})
    st.markdown("**Calibration and borderline band**")
    method = str(calibration.get("method", "—")).capitalize()
    st.markdown(
        f"Probabilities are calibrated ({method} scaling, fitted on "
        f"the validation records): expected calibration error on the test records "
        f"**{ece.get('test', float('nan')):.3f}** (uncalibrated "
        f"{ece.get('test_raw', float('nan')):.3f}). A probability of 30 % means about 3 in 10 "
        "such recordings were abnormal — for recordings like the training data."
    )
    if band:
        st.markdown(
            f"Between **{band['low']:.0%} and {band['high']:.0%}** a result is *unsure — "
            f"borderline*: too close to the threshold {card.threshold:.0%} for a "
            f"confident call ({band.get('share', 0):.0%} of validation records fell there)."
        )


def _phone_simulation_section(path: Path) -> None:
    """Results on stethoscope recordings passed through a simulated phone channel."""
    if not path.exists():
        return
    report = json.loads(path.read_text())
    rows = [
        {
            "condition": name,
            "AUC": m.get("auc"),
            "Se": m.get("plain", {}).get("sensitivity"),
            "Sp": m.get("plain", {}).get("specificity"),
            "unsure": m.get("unsure_half_right", {}).get("unsure_share"),
        }
        for name, m in report.get("conditions", {}).items()
    ]
    st.markdown("**Phone simulation** (test records through a simulated phone, by noise level)")
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            **_METRIC_COLUMNS,
            "unsure": st.column_config.NumberColumn("unsure", format="percent"),
        },
    )
    share = report.get("noise_only_unsure_share")
    noise = "" if share is None else f" Noise-only phone recordings judged unsure: {share:.0%}."
    st.caption(f"{report.get('records', '')}.{noise}")


def _speed_section(path: Path) -> None:
    """The latest benchmark figures (benchmarks/bench_inference.py --out)."""
    if not path.exists():
        return
    b = json.loads(path.read_text())
    st.markdown(
        f"**Speed** (this project's 2-core machine): a whole 30 s recording in "
        f"{b.get('warm_ms_30s_flac_2khz', float('nan')):.0f} ms (2 kHz stethoscope file) and "
        f"{b.get('warm_ms_30s_wav_48khz', float('nan')):.0f} ms (48 kHz phone file); first "
        f"result {b.get('cold_start_s', float('nan')):.1f} s after start; model "
        f"{b.get('model_bytes', 0) / 1024:.0f} KB."
    )


def _metrics_section(card: ModelCard) -> None:
    """Validation/test, per database and leave-one-database-out tables."""
    metrics = card.metrics
    splits = {k: v for k, v in (("validation", metrics.validation), ("test", metrics.test)) if v}
    if splits:
        st.dataframe(_metrics_rows(splits, "split"), hide_index=True, column_config=_METRIC_COLUMNS)
    else:
        st.caption("No validation or test metrics in models/metadata.json.")
    if metrics.test_per_database:
        st.markdown("**Test set, per PhysioNet database**")
        st.dataframe(
            _metrics_rows(metrics.test_per_database, "database"),
            hide_index=True,
            column_config=_METRIC_COLUMNS,
        )
    lodo = metrics.lodo
    st.markdown("**Leave-one-database-out** (trained without the database, tested on it)")
    if lodo.folds:
        st.dataframe(
            _metrics_rows(lodo.folds, "held-out database"),
            hide_index=True,
            column_config=_METRIC_COLUMNS,
        )
        if lodo.mean_macc is not None:
            st.caption(
                f"Mean over held-out databases: MAcc {lodo.mean_macc:.2f}, "
                f"AUC {lodo.mean_auc if lodo.mean_auc is not None else float('nan'):.2f}. This "
                "is the best guess of how the model does on a new kind of stethoscope."
            )
    else:
        st.caption("Not computed for this model yet.")
    st.caption(
        "Se: abnormal recordings called abnormal. Sp: normal recordings called normal. "
        "MAcc: their mean (the PhysioNet 2016 score). AUC: ranking quality, 0.5 = chance."
    )


def _versions_section(registry: Registry) -> None:
    """The registry's versions, and promoting or rolling back by hand."""
    st.subheader("Versions")
    try:
        registry.ensure()
        versions = registry.versions()
    except AuscultError as exc:
        st.error(str(exc))
        return
    active = registry.active_name()
    st.dataframe(
        [
            {
                "version": v.name,
                "serving": "● serving" if v.name == active else "",
                "trained": v.card.training.date[:16].replace("T", " "),
                "test AUC": v.card.metrics.test.get("auc"),
                "sensitivity": v.card.metrics.test.get("sensitivity"),
                "specificity": v.card.metrics.test.get("specificity"),
                "LODO mean AUC": v.card.metrics.lodo.mean_auc,
            }
            for v in versions
        ],
        hide_index=True,
    )
    others = [v.name for v in versions if v.name != active]
    if not others:
        st.caption("One version so far: the committed model. Retrained versions appear here.")
        return
    pick, why, go = st.columns([1.2, 2, 0.8], vertical_alignment="bottom")
    chosen = pick.selectbox("Serve instead", others, key="model_switch")
    reason = why.text_input("Why", key="model_switch_why", placeholder="e.g. echo-confirmed set")
    if go.button("Switch", type="primary", key="model_switch_go"):
        registry.promote(chosen, by="desktop", why=reason)
        st.toast(f"Model {chosen} serves from the next analysis on", icon=":material/swap_horiz:")
        st.rerun()
    st.caption(
        "The switch is atomic and the app, the phone worker and the API serve the chosen "
        "version from their next analysis, without a restart. Every switch is logged."
    )


def _clinic_section() -> None:
    """Labelled recordings of the clinic's own devices: what retraining will learn from."""
    from auscult.store import SITES

    st.subheader("Clinic recordings for retraining")
    clinic = service().clinic
    counts = clinic.counts()
    st.caption(
        f"{counts['normal']} normal and {counts['abnormal']} abnormal recordings kept, with who "
        "labelled them and on what evidence; never mixed into the PhysioNet folder. Confirm "
        "the outcome of an analysed recording under its result, or add labelled files here."
    )
    with st.form("clinic_add", clear_on_submit=True, border=True):
        files = st.file_uploader(
            "Labelled recordings",
            accept_multiple_files=True,
            max_upload_size=max(1, get_settings().max_upload_bytes // (1024 * 1024)),
            key="clinic_files",
        )
        a, b, c = st.columns(3)
        label = a.selectbox("Label (all files)", ("abnormal", "normal"), key="clinic_label")
        site = b.selectbox("Site", ("not given", *SITES), key="clinic_site")
        device = c.text_input("Device", key="clinic_device", placeholder="e.g. Littmann 3200")
        d, e = st.columns(2)
        who = d.text_input("Who labelled them", key="clinic_who")
        evidence = e.text_input("Evidence", key="clinic_evidence", placeholder="e.g. echo")
        if st.form_submit_button("Add", icon=":material/upload:") and files:
            added, failed = 0, []
            bar = st.progress(0.0, text="Checking the recordings…")
            for i, f in enumerate(files, start=1):
                try:
                    clinic.add(
                        f.getvalue(),
                        f.name,
                        label=label,
                        who=who,
                        site=None if site == "not given" else site,
                        device=device,
                        evidence=evidence,
                        source="upload",
                    )
                    added += 1
                except AuscultError as exc:
                    failed.append(f"{f.name}: {exc}")
                bar.progress(i / len(files), text=f"{i} of {len(files)} checked")
            if added:
                st.success(f"{added} recording(s) kept as {label}.")
            for line in failed:
                st.error(line)
    items = clinic.items()
    if items:
        rows = [
            {
                "id": i.id,
                "added": i.created_at[:16].replace("T", " "),
                "file": i.filename,
                "label": i.label,
                "site": i.site or "",
                "device": i.device or "",
                "who": i.who,
                "evidence": i.evidence or "",
                "from analysis": i.analysis_id,
            }
            for i in items[:200]
        ]
        st.dataframe(rows, hide_index=True)


def _retrain_section() -> None:
    """Start, follow and cancel a retraining; the comparison that decided it."""
    from auscult import retrain

    settings = get_settings()
    st.subheader("Retrain on the clinic's recordings")
    st.caption(
        "Fine-tunes the serving model on PhysioNet plus the recordings above (same front end, "
        "augmentation and calibration as `make train`), then compares it with the serving "
        "version on a fixed set no version trains on and on the clinic's held-out "
        "recordings. It is promoted only if the fixed set's AUC drops by at most 0.005, "
        "its sensitivity is not lower and the clinic's AUC is higher; otherwise it stays a "
        "candidate you can switch to above."
    )
    if retrain.running(settings) is None:
        if st.button("Retrain", icon=":material/model_training:", key="retrain_start"):
            try:
                retrain.start_job(settings)
            except AuscultError as exc:
                st.error(str(exc))
            else:
                st.rerun()
    _retrain_progress()


@st.fragment(run_every=1.0)
def _retrain_progress() -> None:
    from auscult import retrain
    from auscult.plots import comparison_figure, figure_png

    settings = get_settings()
    status = retrain.read_status(settings)
    if status is None:
        return
    if retrain.running(settings) is not None:
        st.session_state["retrain_watching"] = True
        st.progress(status.progress, text=f"Retraining: {status.stage}")
        if st.button("Cancel", icon=":material/cancel:", key="retrain_cancel"):
            retrain.cancel_job(settings)
        return
    if st.session_state.pop("retrain_watching", False):
        st.rerun(scope="app")  # it just ended: the versions above gained a candidate
    if status.state == "running":  # its process is gone without a word: killed
        st.warning("The last retraining was stopped before it finished; nothing was kept.")
        return
    if status.state != "done" or status.report is None:
        st.info(f"Last retraining ({status.started_at[:16]}): {status.state} — {status.message}")
        return
    report = status.report
    verdict = "promoted" if report["promoted"] else "kept as a candidate"
    st.markdown(
        f"**Last retraining** ({status.started_at[:16]}): {report['candidate']} "
        f"{verdict}. {report['decision']}"
    )
    rows = []
    for name, side in (("serving", report["before"]), ("new", report["after"])):
        for part, title in (("fixed", "fixed set"), ("clinic", "clinic held out")):
            f = side[part]
            rows.append(
                {
                    "version": name,
                    "records": title,
                    "AUC": f["auc"],
                    "Se": f["sensitivity"],
                    "Sp": f["specificity"],
                    "TP": f["tp"],
                    "FN": f["fn"],
                    "TN": f["tn"],
                    "FP": f["fp"],
                }
            )
    st.dataframe(rows, hide_index=True)
    st.image(figure_png(comparison_figure(report["before"], report["after"])), width="stretch")


def page_model() -> None:
    settings = get_settings()
    st.title("Model card")
    registry = Registry(settings)
    try:
        card: ModelCard | None = load_card(settings, registry.active().metadata_path)
    except AuscultError as exc:
        st.error(str(exc))
        card = None
    records = card.training.records if card else {}
    c = st.columns(4)
    c[0].metric("Version", card.version if card else "—")
    c[1].metric("Decision threshold", f"{card.threshold:.0%}" if card else "—")
    c[2].metric(
        "Records (train / validation / test)",
        " / ".join(str(records.get(k, "—")) for k in ("train", "validation", "test"))
        if records
        else "—",
    )
    c[3].metric("Trained", card.training.date[:10] if card and card.training.date else "—")

    left, right = st.columns([1.2, 1], gap="large")
    with left:
        st.subheader("How well it works")
        if card is not None:
            _metrics_section(card)
            _calibration_section(card)
        _phone_simulation_section(settings.models_dir / "evaluation" / "phone_simulation.json")
        _speed_section(settings.models_dir / "evaluation" / "benchmark.json")
        experiments = settings.models_dir / "experiments.md"
        if experiments.exists():
            with st.expander("Experiments on unseen devices: what helped, what did not"):
                st.markdown(experiments.read_text())
    with right:
        st.subheader("Intended use and limits")
        st.markdown(
            "- **Decision support, not a diagnosis.** A trained clinician decides.\n"
            "- Trained on the **PhysioNet/CinC 2016** heart-sound recordings: electronic "
            "stethoscope recordings of healthy people and heart patients from several "
            "research groups.\n"
            "- **Phone recordings are outside the training distribution**: treat their results "
            "with extra care and record again when unsure.\n"
            "- **Not validated for children or neonates.**\n"
            "- Says *normal* or *abnormal* for the whole recording; it does not name the "
            "lesion. Too noisy recordings are called *unsure*, not abnormal."
        )
        if card is not None and card.training.data:
            split = card.training.split
            st.markdown(
                f"**Training data:** {card.training.data}. Records used: "
                + ", ".join(f"{k} {v}" for k, v in records.items())
                + (f"; split by {split['by']}, seed {split.get('seed')}" if "by" in split else "")
                + "."
            )
        if card is not None and card.threshold_rule:
            st.markdown(f"**Threshold:** {card.threshold_rule}.")

    _versions_section(registry)
    _clinic_section()
    _retrain_section()

    pictures = sorted((settings.models_dir / "evaluation").glob("*.png"))
    if pictures:
        st.subheader("Evaluation")
        cols = st.columns(min(3, len(pictures)))
        for i, pic in enumerate(pictures):
            cols[i % len(cols)].image(str(pic), caption=pic.stem.replace("_", " "), width="stretch")
