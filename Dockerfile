# openai-proxy image: build with the dev dependencies (typescript), run with none.
#   docker build -t openai-proxy .
#   docker run -d -p 8000:8000 -e UPSTREAM_URL=http://llm.internal:8000 -v "$PWD/logs:/app/logs" openai-proxy
# podman: podman build --format docker ... (the default OCI format drops HEALTHCHECK).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
# The official image has the user node (uid 1000); create it where a base lacks it.
RUN if ! id -u node >/dev/null 2>&1; then \
      groupadd --gid 1000 node && useradd --uid 1000 --gid node --create-home --shell /bin/sh node; \
    fi \
 && mkdir -p /app/logs && chown node:node /app/logs
WORKDIR /app
# WORKERS=auto: one worker per CPU the container may use (its --cpus limit when set, not the host's cores)
ENV NODE_ENV=production LOG_DIR=/app/logs HOST=0.0.0.0 PORT=8000 WORKERS=auto
# No runtime dependencies: the compiled code and package.json ("type": "module", version) are all it needs.
COPY --from=build /app/package.json ./
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8000
# The proxy drains on SIGTERM for up to SHUTDOWN_TIMEOUT (30 s): give it a longer grace
# period (docker stop -t 45, compose stop_grace_period: 45s); docker's default is 10 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself (a shell would not pass it on).
CMD ["node", "dist/main.js"]
