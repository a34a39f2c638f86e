"""Experiments users run from ``hrl``: goal following with reports and plots, planning and loop
benchmarks, the SPiRL and Actionable-Models comparisons, policy evaluation, and the process
runner that puts independent runs side by side."""
