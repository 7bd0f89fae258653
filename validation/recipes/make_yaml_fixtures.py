#!/usr/bin/env python3
"""Writes NAME.yaml.json beside each NAME.yaml here: PyYAML's safe_load of the file, as JSON. moeq's YAML reader
(Sources/TensorFormats/YAMLDocument.swift, over Yams) must give the same value (test yamlMatchesPyYAML).

    /tmp/venv-fix/bin/python validation/recipes/make_yaml_fixtures.py
"""
import glob
import json
import os

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
for path in sorted(glob.glob(os.path.join(HERE, "*.yaml"))):
    with open(path) as f:
        value = yaml.safe_load(f)
    with open(path + ".json", "w") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(os.path.basename(path), "->", os.path.basename(path) + ".json", "(PyYAML", yaml.__version__ + ")")
