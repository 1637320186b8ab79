# herd: one container hosting every strategy instance.
#
#   docker build -t herd .
#   docker run --read-only -v herd-data:/var/lib/herd/data -p 3000:3000 herd
#
# With no ALPACA_API_KEY it trades the embedded simulator; see README "Deploy".

# ---- build ------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change.
# Stub targets stand in for the sources (cargo wants every declared target to exist).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in decisions upstream drain training http journal; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && echo '' > tests/supervision.rs \
    && cargo build --release --locked --bin herd \
    && rm -rf src benches tests

COPY src src
COPY config config
# The stubs' build stamps are older than the real sources; touch so cargo rebuilds herd itself.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin herd \
    && mkdir -p /out/var/lib/herd/data \
    && chown -R 1001:1001 /out/var/lib/herd

# ---- run --------------------------------------------------------------------------------
# distroless/cc: glibc and libgcc (herd links both; SQLite and the TLS provider are C), CA
# certificates for Alpaca, and nothing else — no shell, no package manager. debian-slim would
# work too, with a shell and apt an attacker could use.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="herd" \
      org.opencontainers.image.description="Many algorithmic trading strategies in one process, supervised, trading through Alpaca" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.source="https://github.com/herd-trading/herd"

COPY --from=build /src/target/release/herd /usr/local/bin/herd
COPY --from=build /src/config /etc/herd/config
# The only writable path: the journal and trained models. Mount a volume here.
COPY --from=build --chown=1001:1001 /out/var/lib/herd /var/lib/herd

# config/ is read from the working directory; HERD_ENV=production picks config/production.toml.
WORKDIR /etc/herd
ENV HERD_ENV=production \
    HERD__DATA__DIR=/var/lib/herd/data \
    HERD__HTTP__BIND=0.0.0.0 \
    HERD__HTTP__PORT=3000

USER 1001:1001
EXPOSE 3000
VOLUME ["/var/lib/herd/data"]

# herd drains on SIGTERM itself (it is PID 1 through the exec form, and handles the signal).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/herd", "healthcheck", "--timeout", "3s"]

ENTRYPOINT ["/usr/local/bin/herd"]
CMD ["run"]
