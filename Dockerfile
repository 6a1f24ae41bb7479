# One container per replica (docs/OPERATIONS.md, "Docker").
#
#   scripts/docker-base-image.sh        # only where debian:bookworm-slim cannot be pulled
#   docker build -t mir-c .             # add --network host where the build cannot reach apt
#
# The build stage compiles the programs with the packages of scripts/install-deps.sh; the runtime
# stage holds the installed programs and the Debian packages of the libraries they load, found
# with ldd and dpkg in the build stage (scripts/runtime-packages.sh), so the list never goes stale. The replica runs as
# the unprivileged user "mir" with its RocksDB store in the /data volume and its keys mounted
# read-only (/keys by default); mir-entrypoint (deploy/docker/entrypoint.sh) reads a
# configuration file or makes one from environment variables.

FROM debian:bookworm-slim AS build
# The package layer first: it stays cached while only the sources change.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
# Only what the compile reads, so that edits to tests, docs or deploy files keep the compile
# layer cached.
COPY CMakeLists.txt /src/
COPY cmake /src/cmake
COPY proto /src/proto
COPY server /src/server
COPY sdk /src/sdk
# JOBS: parallel compile jobs (default: every core).
ARG JOBS=0
RUN set -e; cd /src; \
    jobs="${JOBS}"; [ "$jobs" -gt 0 ] || jobs="$(nproc)"; \
    cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DMIR_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local; \
    cmake --build /build -j "$jobs" --target mir-replica mir-status mir-keygen mir-cat mir-bench \
      mir-logcheck mir-demo mir-limit mirclient_shared; \
    cmake --install /build --strip --prefix /out/usr/local
COPY scripts/runtime-packages.sh /src/scripts/
COPY deploy/docker/entrypoint.sh /out/usr/local/bin/mir-entrypoint
RUN /src/scripts/runtime-packages.sh /out/usr/local/bin/* /out/usr/local/lib/libmirclient.so \
      > /out/runtime-packages \
 && echo "runtime packages: $(tr '\n' ' ' < /out/runtime-packages)"

FROM debian:bookworm-slim AS runtime
COPY --from=build /out/runtime-packages /usr/local/share/mir/runtime-packages
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(cat /usr/local/share/mir/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin mir \
 && mkdir -p /data /keys /etc/mir /results && chown mir:mir /data /results
COPY --from=build /out/usr/local /usr/local
RUN ldconfig

USER mir
WORKDIR /data
VOLUME ["/data"]
# 7000: the peer transport (mutual TLS); 9000: the client API; 9100: /metrics and profiles.
EXPOSE 7000 9000 9100
ENV MIR_DATA_DIR=/data MIR_KEYS_DIR=/keys MIR_PEER_LISTEN=0.0.0.0:7000 \
    MIR_CLIENT_LISTEN=0.0.0.0:9000
# Healthy once the replica answers Status on its client API (mir-status exit status 0).
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 \
  CMD ["mir-entrypoint", "health"]
# mir-entrypoint execs mir-replica as process 1, so docker stop's SIGTERM reaches the replica
# itself, which shuts down cleanly (calls cancelled, node stopped, store closed).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mir-entrypoint"]
CMD ["replica"]
