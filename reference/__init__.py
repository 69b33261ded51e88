"""The blog's own program, as the post has it: the oracle that tests/ and benchmarks/bench.py compare against."""
