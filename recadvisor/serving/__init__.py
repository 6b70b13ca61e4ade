"""Serving-runtime measurement: models timed the way servers run them.

* :mod:`recadvisor.serving.tfc`: TensorFlow's C API (``TF_LoadSessionFromSavedModel`` +
  ``TF_SessionRun`` in a C loop, what TF Serving and in-house C++ servers do), through a small C
  program (``tfc_bench.c``) compiled on first use against the TensorFlow wheel.
* :mod:`recadvisor.serving.workloads`: ranking requests (one user x N candidates) and closed-loop
  concurrency, in both runtimes.
* :mod:`recadvisor.serving.settings`: session settings (inter-op pool vs caller thread, intra-op
  threads, per-session pools) as ``ConfigProto`` and TF Serving flags, timed in separate
  processes because TensorFlow's thread pools are process-wide.
"""
