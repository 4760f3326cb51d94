# Quill container image: `docker build -t quill .` then see README "Deploying".
# Build stage: the locked dependency set, release profile.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin quill \
 && install -D -m 0755 target/release/quill /out/quill

# Runtime stage: the binary, libpq, libsqlite3, and SoftHSM2 for a development token. A production HSM's
# PKCS#11 module is mounted or added in a derived image and named with QUILL_PKCS11_MODULE.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq5 libsqlite3-0 softhsm2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/quill --create-home --shell /usr/sbin/nologin quill
COPY --from=build /out/quill /usr/local/bin/quill
USER quill
WORKDIR /var/lib/quill
ENV QUILL_LISTEN=0.0.0.0:8080 \
    QUILL_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["/usr/local/bin/quill", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/quill"]
CMD ["serve"]
