"""axonnx: approximate arithmetic in quantized DNNs, on ONNX."""
