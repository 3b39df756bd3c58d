"""The REST API's parts (FastAPI): schemas, dependencies, problem responses, telemetry and
one router per resource. ``api.py`` assembles them; the work is done by
:class:`auscult.service.Service`."""
