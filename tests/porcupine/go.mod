module faultline/porcupine-harness

go 1.19

require github.com/anishathalye/porcupine v0.1.4
