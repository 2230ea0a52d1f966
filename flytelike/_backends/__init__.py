"""Backends run action attempts: in this process, in a warm child process, in a pod, or as a Batch job."""
