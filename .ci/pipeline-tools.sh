#!/bin/sh
# Tools the pipeline tests use when present: headless Chromium renders report.html to a screenshot
# (test/unit/pipeline-report.test.ts skips that step without it).
set -eu
apt-get update
apt-get install -y --no-install-recommends chromium
