"""DiPO: Disentangled Perplexity Policy Optimization (Li et al., arXiv 2604.13902).

`dipo.core` holds the framework-free algorithm (numpy/torch only); engines, rewards,
evaluation and the CPU testbed build on it.
"""

__version__ = "0.1.0"
