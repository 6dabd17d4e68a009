"""Design-space exploration on top of the simulator: sweeps, results store, plots, capacity
search and the `weightstream` CLI."""
