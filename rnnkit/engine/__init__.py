"""How a cell runs over a sequence: native (torch's kernels), scan, reference (plain loop)."""
