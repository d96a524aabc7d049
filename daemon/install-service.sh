#!/usr/bin/env bash
# Placeholder until the daemon issue lands.
echo "install-service.sh: not yet available" >&2; exit 1
