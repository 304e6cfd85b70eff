# km3sim in a container: the `km3sim` command with the io, flux and batch extras.
#
#   docker build -t km3sim .
#   docker run --rm -v "$PWD:/work" -w /work km3sim run productions/quickstart.yaml
#
# The same recipe for Apptainer/Singularity is km3sim.def (apptainer build km3sim.sif km3sim.def).
FROM python:3.11-slim

LABEL org.opencontainers.image.title="km3sim" \
      org.opencontainers.image.description="Monte Carlo production framework for KM3NeT-like neutrino telescopes" \
      org.opencontainers.image.licenses="BSD-3-Clause"

# numba kernels are compiled on first use and cached; keep the cache in a writable place.
# One level of parallelism: dask worker processes, numba single-threaded inside them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/km3sim-numba-cache \
    NUMBA_NUM_THREADS=1 \
    OMP_NUM_THREADS=1

WORKDIR /opt/km3sim-src
# only what the package needs (not a local .venv or output/)
COPY pyproject.toml README.md ./
COPY km3sim ./km3sim
COPY productions ./productions

RUN python -m pip install --upgrade pip \
 && python -m pip install ".[io,flux,batch]" \
 && km3sim --version \
 && km3sim stages > /dev/null \
 && cp -r productions /opt/km3sim-productions \
 && rm -rf /opt/km3sim-src

WORKDIR /work
ENTRYPOINT ["km3sim"]
CMD ["--help"]
