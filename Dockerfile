# x402 service: non-root, runs `x402 serve`. Point DATABASE_URL / REDIS_URL at real servers in production.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock ./
# the locked, hash-checked dependency set first (a cached layer), then the project itself without resolving again
RUN pip install --no-cache-dir --prefix=/install --require-hashes -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY x402 ./x402
COPY chains ./chains
COPY risk ./risk
COPY wallets ./wallets
RUN pip install --no-cache-dir --prefix=/install --no-deps .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10402 x402
COPY --from=build /install /usr/local
USER x402
ENV X402_HOST=0.0.0.0 \
    X402_PORT=4020 \
    X402_DATA_DIR=/home/x402/data \
    PYTHONUNBUFFERED=1
EXPOSE 4020
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4020/healthz').status==200 else 1)"
ENTRYPOINT ["x402"]
CMD ["serve"]

# one-shot helpers of docker-compose.yml (the dev chain's test token deployment): the service plus web3
FROM runtime AS devtools
USER root
RUN pip install --no-cache-dir "web3>=8.0.0,<9"
USER x402

# the default image is the service alone
FROM runtime
