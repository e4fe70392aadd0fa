# Two stages: the first compiles to dist/ and prebuilds the workflow bundle (`npm run build`); the
# second holds only the production dependencies and dist/, and runs with plain node (no TypeScript
# tooling at run time). The worker and the API are the same image with different commands.
FROM node:20-bookworm-slim AS build
# better-sqlite3 builds from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client git ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/examples ./examples
# The audit log's volume mount point, owned by the user the worker and the API run as.
RUN mkdir -p /var/lib/nixfleet && chown node:node /var/lib/nixfleet
USER node
# `docker compose` overrides this for the API: ["node", "dist/src/api/main.js"].
CMD ["node", "--max-semi-space-size=2", "dist/workers/main.js"]
