#!/usr/bin/python3
"""Runs ONNX's own checker on exported files: python3 check_onnx.py FILE.onnx...

Used by OnnxCheckerTest (Maven profile onnx-checker) with Debian's python3-onnx; exits 1 naming the first file
the checker rejects. full_check adds ONNX's shape inference, so a shape that does not propagate fails too.
"""
import sys

import onnx

bad = 0
for path in sys.argv[1:]:
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        print("ok %s (opset %d, ir %d, onnx %s)" % (path, model.opset_import[0].version, model.ir_version, onnx.__version__))
    except Exception as e:  # the checker raises its own ValidationError and InferenceError types
        print("REJECTED %s: %s" % (path, e))
        bad += 1
sys.exit(1 if bad else 0)
