"""How a run happens: the run lifecycle, Locust users, load models, fault injection, sweeps and distributed agents."""
