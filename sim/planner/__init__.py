"""The FlashMem planner: problem extraction, texture layouts, greedy and CP-SAT plans."""
