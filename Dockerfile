# csp-escalation: one image, three services (`escalation run intake|classifier|notifier`).
# Build from the repository root: docker build -t csp-escalation .

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/escalation
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/escalation/bin/pip install . \
    && /opt/escalation/bin/python -m compileall -q /opt/escalation/lib

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 escalation \
    && useradd --system --uid 10001 --gid escalation --home-dir /nonexistent --no-create-home escalation
COPY --from=build /opt/escalation /opt/escalation
ENV PATH=/opt/escalation/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0 \
    ESCALATION_ENVIRONMENT=production
USER 10001:10001
EXPOSE 8080 8081 8082
# Health checks live with the orchestrator (deploy/), which knows which service runs where.
ENTRYPOINT ["escalation"]
CMD ["run", "intake"]
