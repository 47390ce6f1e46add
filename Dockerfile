# The serving image: the FastAPI service only (no torch, no implicit, no training data; LightGBM
# to score a version's ranker).
# Build: docker build -t recsys-candidates .
# Run:   docker run -p 8000:8000 -v "$PWD/artifacts:/artifacts:ro" -e RECSYS_REDIS_URL=redis://redis:6379/0 recsys-candidates
# Models are trained outside the image (`recsys train-all`, `recsys publish`) and mounted at /artifacts.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build stage: a virtual environment with the project and its serving extra --------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# LightGBM (a version's ranker) links the system's OpenMP runtime; the slim image has none. Not
# pinned to a Debian version: bookworm's security updates replace it (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
COPY feature_store ./feature_store
COPY training ./training
RUN /opt/venv/bin/pip install ".[serve]" \
 && /opt/venv/bin/python -c "import app.main, faiss, redis, uvicorn, lightgbm"

# -- build stage of the training image: the train extra too (implicit, torch on CPU) ----------
# torch comes from PyTorch's CPU index: the same pinned version, without gigabytes of CUDA.
FROM build AS build-train
RUN /opt/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[train,serve]" \
 && /opt/venv/bin/python -c "import implicit, torch, training.cli"

# -- the training image: `recsys` (retrain, train-all, publish) for a scheduled job -----------
# Build: docker build --target train -t recsys-candidates:train .
# Run:   docker run --rm -v "$PWD/artifacts:/artifacts" -e RECSYS_REDIS_URL=... recsys-candidates:train retrain -i ...
FROM ${PYTHON_IMAGE} AS train
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 recsys \
 && useradd --system --uid 10001 --gid recsys --home-dir /home/recsys --create-home recsys \
 && mkdir /artifacts \
 && chown recsys:recsys /artifacts
COPY --from=build-train /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECSYS_ARTIFACTS=/artifacts
WORKDIR /home/recsys
USER 10001:10001
ENTRYPOINT ["recsys"]
CMD ["--help"]

# -- runtime stage: the environment, a non-root user, nothing else ----------------------------
# The last stage, so a plain `docker build .` still builds the serving image.
FROM ${PYTHON_IMAGE} AS serve
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 recsys \
 && useradd --system --uid 10001 --gid recsys --home-dir /home/recsys --create-home recsys \
 && mkdir /artifacts \
 && chown recsys:recsys /artifacts
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECSYS_HOST=0.0.0.0 \
    RECSYS_PORT=8000 \
    RECSYS_WORKERS=2 \
    RECSYS_ARTIFACTS=/artifacts
WORKDIR /home/recsys
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['RECSYS_PORT']}/healthz\", timeout=2)"]
# `python -m app` is uvicorn.run with the settings above: uvloop, httptools, RECSYS_WORKERS
# processes and prometheus-client's multiprocess directory when there are several.
ENTRYPOINT ["python", "-m", "app"]
