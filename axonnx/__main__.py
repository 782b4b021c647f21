from axonnx.cli import main

main()
