"""Load test of the REST API (Locust): the anchor system's scenario on Auscult.

    locust -f tests/locustfile.py --headless -u 100 -r 10 -t 60s --host http://127.0.0.1:8000

``benchmarks/bench_api.py`` starts the API and runs this for you. Each simulated user mostly
sends one 10 s 8 kHz WAV for analysis, and also checks health, reads the history and the
metrics, and now and then sends a batch of three. ``AUSCULT_API_KEY`` is sent when set.
Not collected by pytest (the file name does not start with ``test_``).
"""

from __future__ import annotations

import os

from locust import HttpUser, between, task

from auscult.synthetic import heart_sound_wav

WAV = heart_sound_wav(10.0, 8000)
HEADERS = {"X-API-Key": os.environ["AUSCULT_API_KEY"]} if os.environ.get("AUSCULT_API_KEY") else {}


class Clinician(HttpUser):
    wait_time = between(0.4, 1.0)  # a person clicking, not a flood

    @task(5)
    def analyse(self) -> None:
        self.client.post(
            "/v1/analyses?site=mitral",
            data=WAV,
            headers={**HEADERS, "Content-Type": "audio/wav"},
            name="POST /v1/analyses",
        )

    @task(2)
    def health(self) -> None:
        self.client.get("/health", name="GET /health")

    @task(2)
    def history(self) -> None:
        self.client.get("/v1/analyses?limit=20", headers=HEADERS, name="GET /v1/analyses")

    @task(1)
    def metrics(self) -> None:
        self.client.get("/metrics", headers=HEADERS, name="GET /metrics")

    @task(1)
    def batch(self) -> None:
        files = [("files", (f"{i}.wav", WAV, "audio/wav")) for i in range(3)]
        self.client.post(
            "/v1/analyses/batch", files=files, headers=HEADERS, name="POST /v1/analyses/batch"
        )
