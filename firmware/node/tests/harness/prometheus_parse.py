#!/usr/bin/env python3
"""Parses a Prometheus text exposition from stdin with the reference parser
(prometheus_client.parser, Debian's python3-prometheus-client) and prints
its families as JSON: {name: {"type", "help", "samples": [[name, labels,
value], ...]}}. A malformed exposition makes the parser raise: exit 1 with
its message, which the Rust test shows."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.name in families:
        sys.exit(f"family {family.name} appears twice")
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
json.dump(families, sys.stdout)
