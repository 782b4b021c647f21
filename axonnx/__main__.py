from axonnx._entry import main

main()
