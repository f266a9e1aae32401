"""What a run is: the scenario and its settings, key distributions, the retry policy, outcomes.

Pure Python: imports neither Locust nor psycopg."""
