FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client git ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The audit log's volume mount point, owned by the user the worker and the API run as.
RUN mkdir -p /var/lib/nixfleet && chown node:node /var/lib/nixfleet
USER node
