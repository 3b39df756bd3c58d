# Auscult runtime image: the analyzer, the phone page, the REST API and the worker.
# Untested here (no container engine on the development machine); linted with hadolint.
# Build: docker build -t auscult .      Run all parts: docker compose up
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUSCULT_WORK_DIR=/data \
    AUSCULT_API_HOST=0.0.0.0 \
    AUSCULT_ANALYZER_HOST=0.0.0.0 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt

COPY config.py utils.py app.py api.py mobile_recorder.py qr_generator.py launcher.py serving.py \
     supervisor.py ./
COPY auscult/ auscult/
COPY desktop/ desktop/
COPY restapi/ restapi/
COPY static/ static/
COPY models/ models/

RUN useradd --create-home --uid 10001 auscult \
    && mkdir -p /data \
    && chown auscult:auscult /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000 8501 8503

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4); sys.exit(0)"]

# The REST API with its analysis worker; compose runs the other parts from the same image.
CMD ["python", "api.py"]
