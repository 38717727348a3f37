"""Recovery: classify failures, the playbook of routines (one per file under `routines/`), the sweep."""
